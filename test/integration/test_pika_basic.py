"""basic.* methods, publisher confirms and transactions (pika)."""

import pika
import pika.exceptions
import pytest

from helpers import (Consumer, channel_error, get_all, get_one, message_count, pump,
                     pump_until, queue_state, sync_point, uniq, wait_until)


def fresh_queue(ch, n=0, prefix="m"):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(n):
        ch.basic_publish("", q, b"%s%d" % (prefix.encode(), i))
    if n:
        wait_until(lambda: message_count(ch.connection, q) == n, 5,
                   message="%d messages in %s" % (n, q))
    return q


# ---------------------------------------------------------------------------
# qos / consume / cancel
# ---------------------------------------------------------------------------

def test_prefetch_one_allows_one_unacked(ch):
    q = fresh_queue(ch, 3)
    ch.basic_qos(prefetch_count=1)
    c = Consumer(ch, q)
    c.wait(1)
    c.settle(0.5)
    assert c.bodies == [b"m0"], "prefetch 1 delivered more than one unacked message"
    ch.basic_ack(c.messages[0][0].delivery_tag)
    c.wait(2)
    c.settle(0.3)
    assert c.bodies == [b"m0", b"m1"]
    ch.basic_ack(c.messages[1][0].delivery_tag)
    c.wait(3)
    assert c.bodies == [b"m0", b"m1", b"m2"]


def test_prefetch_n_and_multiple_ack(ch):
    q = fresh_queue(ch, 10)
    ch.basic_qos(prefetch_count=3)
    c = Consumer(ch, q)
    c.wait(3)
    c.settle(0.4)
    assert len(c.messages) == 3
    ch.basic_ack(c.messages[2][0].delivery_tag, multiple=True)
    c.wait(6)
    c.settle(0.4)
    assert len(c.messages) == 6
    ch.basic_ack(0, multiple=True)  # tag 0 + multiple: everything outstanding
    c.wait(9)
    ch.basic_ack(0, multiple=True)
    c.wait(10)
    assert c.bodies == [b"m%d" % i for i in range(10)]


def test_prefetch_does_not_limit_auto_ack(ch):
    q = fresh_queue(ch, 5)
    ch.basic_qos(prefetch_count=1)
    c = Consumer(ch, q, auto_ack=True)
    c.wait(5)
    assert c.bodies == [b"m%d" % i for i in range(5)]


def test_consume_cancel_stops_delivery(ch):
    q = fresh_queue(ch)
    c = Consumer(ch, q, auto_ack=True)
    ch.basic_publish("", q, b"before")
    c.wait(1)
    c.cancel()
    ch.basic_publish("", q, b"after")
    c.settle(0.5)
    assert c.bodies == [b"before"]
    assert get_one(ch, q, auto_ack=True)[2] == b"after"


def test_consumer_tag_chosen_by_client_and_server(ch):
    q = fresh_queue(ch)
    c1 = Consumer(ch, q, consumer_tag="my-tag")
    assert c1.tag == "my-tag"
    c2 = Consumer(ch, q)
    assert c2.tag and c2.tag != "my-tag"


def test_round_robin_between_consumers(ch):
    q = fresh_queue(ch)
    c1 = Consumer(ch, q, auto_ack=True)
    c2 = Consumer(ch, q, auto_ack=True)
    for i in range(10):
        ch.basic_publish("", q, b"m%d" % i)
    pump_until(ch.connection, lambda: len(c1.messages) + len(c2.messages) == 10, 10)
    assert len(c1.messages) == 5 and len(c2.messages) == 5


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED")
def test_exclusive_consumer_refuses_others(ch):
    q = fresh_queue(ch)
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    with channel_error(403):
        ch.connection.channel().basic_consume(q, lambda *a: None)


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED")
def test_exclusive_consume_on_queue_with_consumer_refused(ch):
    q = fresh_queue(ch)
    ch.basic_consume(q, lambda *a: None)
    with channel_error(403):
        ch.connection.channel().basic_consume(q, lambda *a: None, exclusive=True)


def test_broker_cancel_when_queue_deleted(ch):
    q = uniq()
    ch.queue_declare(q)
    cancels = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame))
    c = Consumer(ch, q)
    other = ch.connection.channel()
    other.queue_delete(q)
    pump_until(ch.connection, lambda: cancels, 10, "basic.cancel from the broker")
    assert cancels[0].method.consumer_tag == c.tag
    assert ch.is_open  # a broker-sent cancel does not close the channel
    assert c.tag not in ch.consumer_tags


def test_unacked_messages_requeued_on_channel_close(ch):
    q = fresh_queue(ch, 2)
    c2 = ch.connection.channel()
    m1 = get_one(c2, q, auto_ack=False)
    m2 = get_one(c2, q, auto_ack=False)
    assert (m1[2], m2[2]) == (b"m0", b"m1")
    c2.close()
    wait_until(lambda: message_count(ch.connection, q) == 2, 5)
    method, _, body = get_one(ch, q, auto_ack=True)
    assert body == b"m0" and method.redelivered is True


def test_unacked_messages_requeued_on_cancel_is_not_implied(ch):
    # Cancelling a consumer does not requeue its unacked deliveries; they stay
    # with the channel until acked, rejected or the channel closes.
    q = fresh_queue(ch, 1)
    c = Consumer(ch, q)
    c.wait(1)
    c.cancel()
    pump(ch.connection, 0.2)
    assert queue_state(ch.connection, q) == (0, 0)
    ch.basic_ack(c.messages[0][0].delivery_tag)
    sync_point(ch)
    assert queue_state(ch.connection, q) == (0, 0)


# ---------------------------------------------------------------------------
# mandatory / basic.return
# ---------------------------------------------------------------------------

def test_mandatory_unroutable_returned(ch):
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    rk = uniq("nowhere")
    ch.basic_publish("amq.direct", rk, b"bounce", pika.BasicProperties(message_id="r1"),
                     mandatory=True)
    pump_until(ch.connection, lambda: returned, 10, "basic.return")
    method, props, body = returned[0]
    assert method.reply_code == 312
    assert "NO_ROUTE" in method.reply_text
    assert method.exchange == "amq.direct"
    assert method.routing_key == rk
    assert body == b"bounce"
    assert props.message_id == "r1"


def test_mandatory_routable_not_returned(ch):
    q = fresh_queue(ch)
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish("", q, b"fine", mandatory=True)
    assert get_one(ch, q, auto_ack=True)[2] == b"fine"
    pump(ch.connection, 0.3)
    assert returned == []


def test_non_mandatory_unroutable_not_returned(ch):
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish("amq.direct", uniq("nowhere"), b"drop", mandatory=False)
    pump(ch.connection, 0.3)
    sync_point(ch)
    assert returned == []


# ---------------------------------------------------------------------------
# get / ack / nack / reject / recover
# ---------------------------------------------------------------------------

def test_get_and_get_empty(ch):
    q = fresh_queue(ch, 3)
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m0"
    assert method.message_count == 2  # messages left after this one
    assert method.redelivered is False
    assert method.exchange == "" and method.routing_key == q
    assert ch.basic_get(q, auto_ack=True)[2] == b"m1"
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m2" and method.message_count == 0
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)


@pytest.mark.allow_errors(r"404|NOT_FOUND")
def test_get_missing_queue_404(ch):
    with channel_error(404):
        ch.basic_get(uniq("q.missing"))


def test_ack_removes_message(ch):
    q = fresh_queue(ch, 1)
    method, _, _ = ch.basic_get(q, auto_ack=False)
    assert queue_state(ch.connection, q) == (0, 0)
    ch.basic_ack(method.delivery_tag)
    sync_point(ch)
    ch.close()
    c = ch.connection.channel()
    assert c.basic_get(q, auto_ack=True) == (None, None, None)


def test_delivery_tags_increase_per_channel(ch):
    q = fresh_queue(ch, 3)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]
    c2 = ch.connection.channel()
    c2.basic_publish("", q, b"x")
    assert get_one(c2, q)[0].delivery_tag == 1


def test_nack_requeue_sets_redelivered(ch):
    q = fresh_queue(ch, 1)
    method, _, body = ch.basic_get(q, auto_ack=False)
    assert method.redelivered is False
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _, body2 = get_one(ch, q, auto_ack=False)
    assert body2 == body
    assert method.redelivered is True
    ch.basic_ack(method.delivery_tag)


def test_reject_requeue_sets_redelivered(ch):
    q = fresh_queue(ch, 1)
    method, _, _ = ch.basic_get(q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = get_one(ch, q, auto_ack=True)
    assert body == b"m0" and method.redelivered is True


def test_requeued_message_keeps_its_position(ch):
    q = fresh_queue(ch, 3)
    method, _, _ = ch.basic_get(q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=True)
    sync_point(ch)
    assert get_all(ch, q) == [b"m0", b"m1", b"m2"]


def test_reject_without_requeue_drops(ch):
    q = fresh_queue(ch, 1)
    method, _, _ = ch.basic_get(q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    sync_point(ch)
    pump(ch.connection, 0.2)
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)
    assert queue_state(ch.connection, q) == (0, 0)


def test_nack_without_requeue_drops(ch):
    q = fresh_queue(ch, 2)
    m0 = ch.basic_get(q)[0]
    ch.basic_nack(m0.delivery_tag, requeue=False)
    sync_point(ch)
    assert get_all(ch, q) == [b"m1"]


def test_nack_multiple_requeue(ch):
    q = fresh_queue(ch, 4)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(4)]
    ch.basic_nack(tags[2], multiple=True, requeue=True)  # tags 1..3
    wait_until(lambda: message_count(ch.connection, q) == 3, 5)
    ch.basic_ack(tags[3])
    bodies = []
    for _ in range(3):
        method, _, body = get_one(ch, q, auto_ack=True)
        assert method.redelivered is True
        bodies.append(body)
    assert bodies == [b"m0", b"m1", b"m2"]


def test_nack_multiple_without_requeue(ch):
    q = fresh_queue(ch, 3)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    sync_point(ch)
    ch.close()
    assert queue_state(ch.connection, q) == (0, 0)


def test_recover_requeue_redelivers_to_consumer(ch):
    q = fresh_queue(ch, 2)
    c = Consumer(ch, q)
    c.wait(2)
    assert all(m[0].redelivered is False for m in c.messages)
    ch.basic_recover(requeue=True)
    c.wait(4)
    again = c.messages[2:]
    assert sorted(m[2] for m in again) == [b"m0", b"m1"]
    assert all(m[0].redelivered is True for m in again)
    for m in again:
        ch.basic_ack(m[0].delivery_tag)
    sync_point(ch)


def test_recover_after_get(ch):
    q = fresh_queue(ch, 1)
    ch.basic_get(q, auto_ack=False)
    ch.basic_recover(requeue=True)
    method, _, body = get_one(ch, q, auto_ack=True)
    assert body == b"m0" and method.redelivered is True


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_ack_unknown_delivery_tag_406(ch):
    fresh_queue(ch)
    ch.basic_ack(999)
    with channel_error(406) as ei:
        sync_point(ch)
    assert "PRECONDITION_FAILED" in ei.value.reply_text


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_double_ack_406(ch):
    q = fresh_queue(ch, 1)
    method, _, _ = ch.basic_get(q, auto_ack=False)
    ch.basic_ack(method.delivery_tag)
    ch.basic_ack(method.delivery_tag)
    with channel_error(406):
        sync_point(ch)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_ack_of_auto_acked_delivery_406(ch):
    q = fresh_queue(ch, 1)
    method, _, _ = ch.basic_get(q, auto_ack=True)
    ch.basic_ack(method.delivery_tag)
    with channel_error(406):
        sync_point(ch)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_reject_unknown_delivery_tag_406(ch):
    ch.basic_reject(42, requeue=True)
    with channel_error(406):
        sync_point(ch)


# ---------------------------------------------------------------------------
# publisher confirms
# ---------------------------------------------------------------------------

def test_confirms_every_publish_acked(ch):
    q = fresh_queue(ch)
    ch.confirm_delivery()
    for i in range(50):
        # BlockingChannel.basic_publish waits for the ack and raises on nack
        ch.basic_publish("", q, b"c%d" % i)
    assert message_count(ch.connection, q) == 50


def test_confirms_persistent_to_durable_queue(ch):
    q = uniq("q.durable")
    ch.queue_declare(q, durable=True)
    try:
        ch.confirm_delivery()
        for i in range(20):
            ch.basic_publish("", q, b"p%d" % i, pika.BasicProperties(delivery_mode=2))
        assert message_count(ch.connection, q) == 20
    finally:
        ch.queue_delete(q)


def test_confirms_unroutable_still_acked(ch):
    ch.confirm_delivery()
    # not mandatory: silently dropped, but confirmed
    ch.basic_publish("amq.direct", uniq("nowhere"), b"dropped")
    # mandatory: basic.return, then the ack; pika raises UnroutableError only
    # after it has seen the ack (a nack would raise NackError instead)
    with pytest.raises(pika.exceptions.UnroutableError) as ei:
        ch.basic_publish("amq.direct", uniq("nowhere"), b"returned", mandatory=True)
    assert len(ei.value.messages) == 1
    assert ei.value.messages[0].body == b"returned"
    assert ei.value.messages[0].method.reply_code == 312
    q = fresh_queue(ch)
    ch.basic_publish("", q, b"still-fine")


def test_confirm_delivery_tags_with_async_listener(shared_broker, connect):
    """Raw check of publish sequence numbers: with the low-level channel,
    count acked sequence numbers; all of 1..N must be covered."""
    conn = connect(shared_broker)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    impl = ch._impl  # the asynchronous pika.channel.Channel behind it
    acked, nacked = set(), set()
    last = [0]

    def on_confirm(frame):
        m = frame.method
        target = acked if m.NAME == "Basic.Ack" else nacked
        if m.multiple:
            target.update(range(last[0] + 1, m.delivery_tag + 1))
        else:
            target.add(m.delivery_tag)
        last[0] = max(last[0], m.delivery_tag)

    done = []
    impl.confirm_delivery(on_confirm, callback=lambda f: done.append(f))
    pump_until(conn, lambda: done, 5, "confirm.select-ok")
    n = 200
    for i in range(n):
        impl.basic_publish("", q, b"x%d" % i)
    pump_until(conn, lambda: len(acked | nacked) >= n, 20, "confirms for all publishes")
    assert nacked == set()
    assert acked == set(range(1, n + 1))


# ---------------------------------------------------------------------------
# transactions
# ---------------------------------------------------------------------------

def test_tx_commit_delivers(ch):
    q = fresh_queue(ch)
    ch.tx_select()
    ch.basic_publish("", q, b"t1")
    ch.basic_publish("", q, b"t2")
    pump(ch.connection, 0.2)
    assert queue_state(ch.connection, q) == (0, 0), "uncommitted publishes visible"
    ch.tx_commit()
    assert get_one(ch, q, auto_ack=True)[2] == b"t1"
    assert get_one(ch, q, auto_ack=True)[2] == b"t2"


def test_tx_rollback_discards_publishes(ch):
    q = fresh_queue(ch)
    ch.tx_select()
    ch.basic_publish("", q, b"never")
    ch.tx_rollback()
    ch.basic_publish("", q, b"committed")
    ch.tx_commit()
    pump(ch.connection, 0.2)
    assert get_all(ch, q, auto_ack=False) == [b"committed"]


def test_tx_rollback_does_not_apply_acks(ch):
    q = fresh_queue(ch, 1)
    c = ch.connection.channel()
    c.tx_select()
    method, _, _ = c.basic_get(q, auto_ack=False)
    c.basic_ack(method.delivery_tag)
    c.tx_rollback()
    c.close()  # the ack was rolled back, so the message is still unacked: requeued
    wait_until(lambda: message_count(ch.connection, q) == 1, 5,
               message="rolled-back ack left the message in the queue")
    assert get_one(ch, q, auto_ack=True)[2] == b"m0"


def test_tx_commit_applies_acks(ch):
    q = fresh_queue(ch, 1)
    c = ch.connection.channel()
    c.tx_select()
    method, _, _ = c.basic_get(q, auto_ack=False)
    c.basic_ack(method.delivery_tag)
    c.tx_commit()
    c.close()
    pump(ch.connection, 0.3)
    assert queue_state(ch.connection, q) == (0, 0)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_tx_commit_without_select_406(ch):
    with channel_error(406):
        ch.tx_commit()


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_confirm_select_after_tx_select_406(ch):
    ch.tx_select()
    with channel_error(406):
        ch.confirm_delivery()


# ---------------------------------------------------------------------------
# volume and ordering
# ---------------------------------------------------------------------------

def test_many_messages_keep_order(ch):
    q = fresh_queue(ch)
    n = 5000
    for i in range(n):
        ch.basic_publish("", q, b"%05d" % i)
    ch.basic_qos(prefetch_count=100)
    c = Consumer(ch, q)
    acked = 0
    while acked < n:
        upto = min(acked + 50, n)
        c.wait(upto, timeout=20)
        ch.basic_ack(c.messages[upto - 1][0].delivery_tag, multiple=True)
        acked = upto
    assert c.bodies == [b"%05d" % i for i in range(n)]
    assert [m[0].delivery_tag for m in c.messages] == list(range(1, n + 1))
    c.settle(0.2)
    assert queue_state(ch.connection, q) == (0, 1)


def test_concurrent_publishers_each_message_once(shared_broker, connect):
    q = uniq("q.fanin")
    setup = connect(shared_broker).channel()
    setup.queue_declare(q)
    try:
        pubs = [connect(shared_broker).channel() for _ in range(4)]
        for p in pubs:
            p.confirm_delivery()
        per = 300
        for i in range(per):
            for k, p in enumerate(pubs):
                p.basic_publish("", q, b"%d-%d" % (k, i))
        got = get_all(setup, q)
        assert len(got) == 4 * per
        assert len(set(got)) == 4 * per
        # per-publisher order is preserved
        for k in range(4):
            mine = [g for g in got if g.startswith(b"%d-" % k)]
            assert mine == [b"%d-%d" % (k, i) for i in range(per)]
    finally:
        setup.queue_delete(q)
