"""Queue arguments (x-*) and per-message properties that change queue
behaviour: TTLs, expiry, length limits, dead-lettering, priorities and single
active consumer (pika)."""


import pika
import pika.exceptions
import pytest

from helpers import (Consumer, channel_error, get_all, get_one, header_str, message_count,
                     pump, queue_exists, sync_point, uniq, wait_until)


def declare(ch, arguments, name=None, **kw):
    q = name or uniq()
    ch.queue_declare(q, arguments=arguments, **kw)
    return q


def dead_letter_setup(ch, routing_key=None):
    """A DLX (direct) with a queue bound under 'dl' and under the original
    queue name; returns (dlx, dlq)."""
    dlx = uniq("x.dlx")
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    dlq = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(dlq, dlx)
    return dlx, dlq


def check_x_death(props, reason, queue, exchange, routing_keys, count=1):
    headers = props.headers or {}
    assert "x-death" in headers, "no x-death header in %r" % headers
    deaths = headers["x-death"]
    assert isinstance(deaths, list) and deaths, deaths
    d = deaths[0]
    assert header_str(d["reason"]) == reason, d
    assert header_str(d["queue"]) == queue, d
    assert header_str(d["exchange"]) == exchange, d
    assert [header_str(k) for k in d["routing-keys"]] == routing_keys, d
    assert d["count"] == count, d
    assert "time" in d, d
    assert header_str(headers.get("x-first-death-reason")) == reason, headers
    assert header_str(headers.get("x-first-death-queue")) == queue, headers
    assert header_str(headers.get("x-first-death-exchange")) == exchange, headers


# ---------------------------------------------------------------------------
# TTLs and expiry
# ---------------------------------------------------------------------------

def test_queue_message_ttl(ch):
    q = declare(ch, {"x-message-ttl": 200}, exclusive=True)
    ch.basic_publish("", q, b"short-lived")
    wait_until(lambda: message_count(ch.connection, q) == 0, 10,
               message="message expired by x-message-ttl")
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)


def test_queue_message_ttl_zero_without_consumer_drops(ch):
    q = declare(ch, {"x-message-ttl": 0}, exclusive=True)
    ch.basic_publish("", q, b"now-or-never")
    pump(ch.connection, 0.3)
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)


def test_queue_message_ttl_not_applied_to_unexpired(ch):
    q = declare(ch, {"x-message-ttl": 60000}, exclusive=True)
    ch.basic_publish("", q, b"long-lived")
    assert get_one(ch, q, auto_ack=True)[2] == b"long-lived"


def test_per_message_expiration(ch):
    q = declare(ch, None, exclusive=True)
    ch.basic_publish("", q, b"expiring", pika.BasicProperties(expiration="150"))
    ch.basic_publish("", q, b"keeps", pika.BasicProperties(expiration="600000"))
    ch.basic_publish("", q, b"no-expiry")
    wait_until(lambda: message_count(ch.connection, q) == 2, 10,
               message="expired message removed")
    method, props, body = get_one(ch, q, auto_ack=True)
    assert body == b"keeps"
    assert props.expiration == "600000"  # the property is passed on unchanged
    assert get_one(ch, q, auto_ack=True)[2] == b"no-expiry"


def test_per_message_expiration_lower_of_two_ttls_wins(ch):
    q = declare(ch, {"x-message-ttl": 150}, exclusive=True)
    ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="600000"))
    wait_until(lambda: message_count(ch.connection, q) == 0, 10,
               message="queue TTL applied despite longer per-message expiration")


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_invalid_per_message_expiration_406(ch):
    q = declare(ch, None, exclusive=True)
    ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="soon"))
    with channel_error(406):
        sync_point(ch)


def test_queue_expires_when_unused(ch):
    # A passive declare counts as a use and restarts the expiry timer, so poll
    # less often than the queue's x-expires.
    q = declare(ch, {"x-expires": 200})
    wait_until(lambda: not queue_exists(ch.connection, q), 15, interval=1.0,
               message="queue with x-expires removed")


def test_queue_with_consumer_does_not_expire(ch):
    q = declare(ch, {"x-expires": 200})
    c = Consumer(ch, q)
    pump(ch.connection, 1.5)
    assert queue_exists(ch.connection, q)
    c.cancel()
    wait_until(lambda: not queue_exists(ch.connection, q), 15, interval=1.0,
               message="queue with x-expires removed after its consumer left")


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_invalid_queue_arguments_406(ch):
    for args in ({"x-expires": 0}, {"x-message-ttl": -1}, {"x-max-length": -1},
                 {"x-max-priority": 256}, {"x-overflow": "sideways"}):
        c = ch.connection.channel()
        with channel_error(406):
            c.queue_declare(uniq(), arguments=args)


# ---------------------------------------------------------------------------
# length limits
# ---------------------------------------------------------------------------

def test_max_length_drop_head(ch):
    q = declare(ch, {"x-max-length": 2}, exclusive=True)
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i)
    wait_until(lambda: message_count(ch.connection, q) == 2, 5)
    pump(ch.connection, 0.2)
    assert get_all(ch, q) == [b"m3", b"m4"]


def test_max_length_reject_publish_nacks(ch):
    q = declare(ch, {"x-max-length": 2, "x-overflow": "reject-publish"}, exclusive=True)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"m0")
    ch.basic_publish("", q, b"m1")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"m2")
    assert get_all(ch, q) == [b"m0", b"m1"]
    ch.basic_publish("", q, b"m3")  # room again: acked
    assert get_all(ch, q) == [b"m3"]


def test_max_length_reject_publish_without_confirms_drops(ch):
    q = declare(ch, {"x-max-length": 1, "x-overflow": "reject-publish"}, exclusive=True)
    ch.basic_publish("", q, b"first")
    ch.basic_publish("", q, b"second")
    pump(ch.connection, 0.3)
    assert get_all(ch, q) == [b"first"]


def test_max_length_counts_only_ready_messages(ch):
    q = declare(ch, {"x-max-length": 1}, exclusive=True)
    ch.basic_publish("", q, b"a")
    method, _, _ = get_one(ch, q, auto_ack=False)  # unacked: not counted
    ch.basic_publish("", q, b"b")
    wait_until(lambda: message_count(ch.connection, q) == 1, 5)
    ch.basic_ack(method.delivery_tag)
    assert get_all(ch, q) == [b"b"]


def test_max_length_bytes(ch):
    q = declare(ch, {"x-max-length-bytes": 10}, exclusive=True)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i * 5)  # 5 body bytes each
    wait_until(lambda: message_count(ch.connection, q) == 2, 5)
    pump(ch.connection, 0.2)
    assert get_all(ch, q) == [b"11111", b"22222"]


def test_max_length_bytes_reject_publish(ch):
    q = declare(ch, {"x-max-length-bytes": 8, "x-overflow": "reject-publish"}, exclusive=True)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"12345")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"67890")
    assert get_all(ch, q) == [b"12345"]


# ---------------------------------------------------------------------------
# dead-lettering
# ---------------------------------------------------------------------------

def test_dead_letter_on_reject(ch):
    dlx, dlq = dead_letter_setup(ch)
    q = declare(ch, {"x-dead-letter-exchange": dlx}, exclusive=True)
    ch.basic_publish("", q, b"bad", pika.BasicProperties(headers={"orig": "yes"}))
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = get_one(ch, dlq, auto_ack=True)
    assert body == b"bad"
    assert method.exchange == dlx
    assert method.routing_key == q  # no x-dead-letter-routing-key: original key kept
    assert header_str(props.headers.get("orig")) == "yes"
    check_x_death(props, "rejected", q, "", [q])


def test_dead_letter_on_nack_with_routing_key(ch):
    dlx = uniq("x.dlx")
    ch.exchange_declare(dlx, "direct", auto_delete=True)
    dlq = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(dlq, dlx, "dl")
    q = declare(ch, {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl"},
                exclusive=True)
    ch.queue_bind(q, "amq.direct", "orig-key")
    ch.basic_publish("amq.direct", "orig-key", b"nacked")
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=False)
    method, props, body = get_one(ch, dlq, auto_ack=True)
    assert body == b"nacked"
    assert method.routing_key == "dl"
    check_x_death(props, "rejected", q, "amq.direct", ["orig-key"])


def test_dead_letter_on_requeue_is_not_dead_lettered(ch):
    dlx, dlq = dead_letter_setup(ch)
    q = declare(ch, {"x-dead-letter-exchange": dlx}, exclusive=True)
    ch.basic_publish("", q, b"requeued")
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert get_one(ch, q, auto_ack=True)[2] == b"requeued"
    pump(ch.connection, 0.2)
    assert get_all(ch, dlq) == []


def test_dead_letter_on_expiry(ch):
    dlx, dlq = dead_letter_setup(ch)
    q = declare(ch, {"x-dead-letter-exchange": dlx, "x-message-ttl": 100}, exclusive=True)
    ch.basic_publish("", q, b"expired")
    method, props, body = get_one(ch, dlq, auto_ack=True, timeout=10)
    assert body == b"expired"
    check_x_death(props, "expired", q, "", [q])


def test_dead_letter_on_per_message_expiry_keeps_original_expiration(ch):
    dlx, dlq = dead_letter_setup(ch)
    q = declare(ch, {"x-dead-letter-exchange": dlx}, exclusive=True)
    ch.basic_publish("", q, b"expired", pika.BasicProperties(expiration="100"))
    method, props, body = get_one(ch, dlq, auto_ack=True, timeout=10)
    assert body == b"expired"
    check_x_death(props, "expired", q, "", [q])
    # the expiration is removed so the message does not expire again
    assert props.expiration is None
    assert header_str(props.headers["x-death"][0].get("original-expiration")) == "100"


def test_dead_letter_on_max_length(ch):
    dlx, dlq = dead_letter_setup(ch)
    q = declare(ch, {"x-dead-letter-exchange": dlx, "x-max-length": 1}, exclusive=True)
    ch.basic_publish("", q, b"first")
    ch.basic_publish("", q, b"second")
    method, props, body = get_one(ch, dlq, auto_ack=True)
    assert body == b"first"
    check_x_death(props, "maxlen", q, "", [q])
    assert get_all(ch, q) == [b"second"]


def test_dead_letter_count_increments(ch):
    # q1 -> (reject) -> dlx -> q2 -> (reject) -> dlx2 -> q1 ... the same
    # queue/reason pair seen twice must bump "count" rather than add an entry.
    dlx = uniq("x.dlx")
    ch.exchange_declare(dlx, "direct", auto_delete=True)
    q1 = declare(ch, {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "to-q2"},
                 exclusive=True)
    q2 = declare(ch, {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "to-q1"},
                 exclusive=True)
    ch.queue_bind(q2, dlx, "to-q2")
    ch.queue_bind(q1, dlx, "to-q1")
    ch.basic_publish("", q1, b"bounce")
    for q in (q1, q2, q1):
        method, props, _ = get_one(ch, q, auto_ack=False)
        ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = get_one(ch, q2, auto_ack=True)
    deaths = props.headers["x-death"]
    by_queue = {header_str(d["queue"]): d for d in deaths}
    assert set(by_queue) == {q1, q2}, deaths
    assert by_queue[q1]["count"] == 2
    assert by_queue[q2]["count"] == 1
    # most recent death first
    assert header_str(deaths[0]["queue"]) == q1
    assert header_str(props.headers["x-first-death-queue"]) == q1


def test_dead_letter_exchange_missing_drops(ch):
    q = declare(ch, {"x-dead-letter-exchange": uniq("x.absent")}, exclusive=True)
    ch.basic_publish("", q, b"lost")
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    pump(ch.connection, 0.3)
    assert get_all(ch, q) == []
    assert ch.is_open


# ---------------------------------------------------------------------------
# priorities
# ---------------------------------------------------------------------------

def test_max_priority_ordering(ch):
    q = declare(ch, {"x-max-priority": 10}, exclusive=True)
    for body, prio in ((b"p1", 1), (b"p5a", 5), (b"p9", 9), (b"p0", 0), (b"p5b", 5),
                       (b"none", None), (b"p200", 200)):
        ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
    wait_until(lambda: message_count(ch.connection, q) == 7, 5)
    got = get_all(ch, q)
    # priorities above the maximum count as the maximum; no priority is 0;
    # equal priorities keep FIFO order
    assert got == [b"p200", b"p9", b"p5a", b"p5b", b"p1", b"p0", b"none"]


def test_max_priority_with_consumer_and_prefetch(ch):
    q = declare(ch, {"x-max-priority": 5}, exclusive=True)
    for prio in (1, 2, 3, 4, 5):
        ch.basic_publish("", q, b"%d" % prio, pika.BasicProperties(priority=prio))
    wait_until(lambda: message_count(ch.connection, q) == 5, 5)
    ch.basic_qos(prefetch_count=1)
    c = Consumer(ch, q)
    for i in range(5):
        c.wait(i + 1)
        ch.basic_ack(c.messages[i][0].delivery_tag)
    assert c.bodies == [b"5", b"4", b"3", b"2", b"1"]


def test_priority_ignored_without_max_priority(ch):
    q = declare(ch, None, exclusive=True)
    for body, prio in ((b"a", 1), (b"b", 9), (b"c", 5)):
        ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
    wait_until(lambda: message_count(ch.connection, q) == 3, 5)
    assert get_all(ch, q) == [b"a", b"b", b"c"]


# ---------------------------------------------------------------------------
# single active consumer
# ---------------------------------------------------------------------------

def test_single_active_consumer(shared_broker, connect):
    conn = connect(shared_broker)
    ch = conn.channel()
    q = declare(ch, {"x-single-active-consumer": True})
    try:
        c1 = Consumer(ch, q, auto_ack=True)
        c2 = Consumer(ch, q, auto_ack=True)
        for i in range(6):
            ch.basic_publish("", q, b"a%d" % i)
        c1.wait(6)
        c1.settle(0.3)
        assert c2.messages == [], "second consumer got deliveries while the first was active"
        assert c1.bodies == [b"a%d" % i for i in range(6)]
        c1.cancel()
        for i in range(3):
            ch.basic_publish("", q, b"b%d" % i)
        c2.wait(3)
        assert c2.bodies == [b"b0", b"b1", b"b2"]
        assert len(c1.messages) == 6
    finally:
        conn.channel().queue_delete(q)


def test_single_active_consumer_failover_on_connection_close(shared_broker, connect):
    conn1 = connect(shared_broker)
    conn2 = connect(shared_broker)
    ch1 = conn1.channel()
    q = declare(ch1, {"x-single-active-consumer": True})
    try:
        c1 = Consumer(ch1, q)
        ch2 = conn2.channel()
        c2 = Consumer(ch2, q, auto_ack=True)
        ch1.basic_publish("", q, b"to-first")
        c1.wait(1)
        conn1.close()  # unacked delivery is requeued and goes to the new active consumer
        c2.wait(1)
        method, _, body = c2.messages[0]
        assert body == b"to-first" and method.redelivered is True
        ch2.basic_publish("", q, b"next")
        c2.wait(2)
        assert c2.bodies[1] == b"next"
    finally:
        conn2.channel().queue_delete(q)
