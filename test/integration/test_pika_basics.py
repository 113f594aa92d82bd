"""Connecting, publishing and consuming, and exchanges of every kind (pika)."""

import pika
import pika.exceptions
import pytest

from helpers import (Consumer, channel_error, connection_error_code, exchange_exists, get_all,
                     get_one, pump, pump_until, sync_point, uniq, wait_until)


def publish(ch, exchange, routing_key, body, **props):
    ch.basic_publish(exchange, routing_key, body,
                     pika.BasicProperties(**props) if props else None)


def bound_queue(ch, exchange, routing_key="", arguments=None):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, exchange, routing_key, arguments=arguments)
    return q


# ---------------------------------------------------------------------------
# connection and the default exchange
# ---------------------------------------------------------------------------

def test_connect_plain_and_server_properties(shared_broker, connect):
    conn = connect(shared_broker)
    assert conn.is_open
    props = conn._impl.server_properties
    caps = props.get("capabilities", {})
    # Clients (pika, amqplib, Java, .NET) look these capabilities up to enable
    # features; RabbitMQ advertises all of them.
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked"):
        assert caps.get(cap) is True, "capability %s missing from %r" % (cap, caps)
    ch = conn.channel()
    assert ch.is_open
    conn.close()
    assert conn.is_closed


def test_default_exchange_publish_get(ch):
    q = uniq()
    ch.queue_declare(q)
    try:
        publish(ch, "", q, b"hello", content_type="text/plain", delivery_mode=2,
                headers={"k": "v", "n": 7}, correlation_id="c1", reply_to="r",
                message_id="m1", app_id="app", type="t", user_id="guest", priority=3,
                timestamp=1700000000)
        method, props, body = get_one(ch, q, auto_ack=True)
        assert body == b"hello"
        assert method.exchange == ""
        assert method.routing_key == q
        assert method.redelivered is False
        assert props.content_type == "text/plain"
        assert props.delivery_mode == 2
        assert props.headers == {"k": "v", "n": 7}
        assert props.correlation_id == "c1"
        assert props.reply_to == "r"
        assert props.message_id == "m1"
        assert props.app_id == "app"
        assert props.type == "t"
        assert props.user_id == "guest"
        assert props.priority == 3
        assert props.timestamp == 1700000000
    finally:
        ch.queue_delete(q)


def test_default_exchange_consume(ch):
    q = uniq()
    ch.queue_declare(q)
    try:
        c = Consumer(ch, q, auto_ack=True)
        for i in range(10):
            publish(ch, "", q, b"m%d" % i)
        c.wait(10)
        assert c.bodies == [b"m%d" % i for i in range(10)]
        assert [m[0].delivery_tag for m in c.messages] == list(range(1, 11))
        assert all(m[0].consumer_tag == c.tag for m in c.messages)
    finally:
        ch.queue_delete(q)


def test_empty_body_round_trip(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    publish(ch, "", q, b"")
    method, props, body = get_one(ch, q, auto_ack=True)
    assert body == b""


def test_publish_to_default_exchange_unknown_queue_is_dropped(ch):
    publish(ch, "", uniq("nowhere"), b"x")
    sync_point(ch)  # no channel error: unroutable non-mandatory messages are dropped
    assert ch.is_open


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED")
def test_bind_to_default_exchange_refused(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    with channel_error(403):
        ch.queue_bind(q, "", "x")


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED")
def test_delete_default_exchange_refused(ch):
    with channel_error(403):
        ch.exchange_delete("")


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED")
def test_declare_amq_prefixed_exchange_refused(ch):
    with channel_error(403):
        ch.exchange_declare(uniq("amq.custom"), "direct")


# ---------------------------------------------------------------------------
# exchange types
# ---------------------------------------------------------------------------

def test_direct_exchange(ch):
    x = uniq("x.direct")
    ch.exchange_declare(x, "direct", auto_delete=False)
    try:
        qa = bound_queue(ch, x, "a")
        qb = bound_queue(ch, x, "b")
        ch.queue_bind(qb, x, "a")  # one queue with two bindings
        publish(ch, x, "a", b"to-a")
        publish(ch, x, "b", b"to-b")
        publish(ch, x, "c", b"to-nobody")
        assert get_one(ch, qa, auto_ack=True)[2] == b"to-a"
        got_b = [get_one(ch, qb, auto_ack=True)[2] for _ in range(2)]
        assert got_b == [b"to-a", b"to-b"]
        pump(ch.connection, 0.2)
        assert get_all(ch, qa) == []
        assert get_all(ch, qb) == []
    finally:
        ch.exchange_delete(x)


def test_fanout_exchange(ch):
    x = uniq("x.fanout")
    ch.exchange_declare(x, "fanout")
    try:
        qs = [bound_queue(ch, x, "ignored-%d" % i) for i in range(3)]
        publish(ch, x, "anything", b"hi")
        for q in qs:
            assert get_one(ch, q, auto_ack=True)[2] == b"hi"
            assert get_all(ch, q) == []
    finally:
        ch.exchange_delete(x)


@pytest.mark.parametrize("pattern,matches,misses", [
    ("a.b.c", ["a.b.c"], ["a.b", "a.b.c.d", "a.x.c"]),
    ("a.*.c", ["a.b.c", "a.x.c"], ["a.c", "a.b.b.c", "b.b.c"]),
    ("a.#", ["a", "a.b", "a.b.c.d"], ["b.a", "ab"]),
    ("#.z", ["z", "a.z", "a.b.z"], ["z.a", "az"]),
    ("*", ["a", "bcd"], ["", "a.b"]),
    ("#", ["", "a", "a.b.c"], []),
    ("a.#.z", ["a.z", "a.b.z", "a.b.c.z"], ["a.b", "z", "b.a.z"]),
    ("*.*", ["a.b"], ["a", "a.b.c"]),
])
def test_topic_exchange_patterns(ch, pattern, matches, misses):
    x = uniq("x.topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = bound_queue(ch, x, pattern)
    for rk in matches + misses:
        publish(ch, x, rk, rk.encode())
    got = []
    for _ in matches:
        got.append(get_one(ch, q, auto_ack=True)[2].decode())
    pump(ch.connection, 0.1)
    got += [b.decode() for b in get_all(ch, q)]
    assert sorted(got) == sorted(matches)


def test_topic_exchange_multiple_bindings_deliver_once(ch):
    x = uniq("x.topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = bound_queue(ch, x, "a.*")
    ch.queue_bind(q, x, "*.b")
    ch.queue_bind(q, x, "#")
    publish(ch, x, "a.b", b"once")
    assert get_one(ch, q, auto_ack=True)[2] == b"once"
    pump(ch.connection, 0.2)
    assert get_all(ch, q) == []


def test_headers_exchange_all_and_any(ch):
    x = uniq("x.headers")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q_all = bound_queue(ch, x, "", arguments={"x-match": "all", "a": 1, "b": "two"})
    q_any = bound_queue(ch, x, "", arguments={"x-match": "any", "a": 1, "b": "two"})
    q_default = bound_queue(ch, x, "", arguments={"a": 1, "b": "two"})  # default is all
    publish(ch, x, "", b"both", headers={"a": 1, "b": "two", "c": 3})
    publish(ch, x, "", b"only-a", headers={"a": 1})
    publish(ch, x, "", b"wrong-b", headers={"a": 1, "b": "three"})
    publish(ch, x, "", b"none", headers={"z": 1})
    publish(ch, x, "", b"no-headers")
    publish(ch, x, "", b"last", headers={"a": 1, "b": "two"})
    assert [get_one(ch, q_all, auto_ack=True)[2] for _ in range(2)] == [b"both", b"last"]
    assert [get_one(ch, q_default, auto_ack=True)[2] for _ in range(2)] == [b"both", b"last"]
    assert [get_one(ch, q_any, auto_ack=True)[2] for _ in range(4)] == \
        [b"both", b"only-a", b"wrong-b", b"last"]
    pump(ch.connection, 0.2)
    for q in (q_all, q_any, q_default):
        assert get_all(ch, q) == []


def test_headers_exchange_empty_binding_matches_everything(ch):
    x = uniq("x.headers")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = bound_queue(ch, x, "", arguments={"x-match": "all"})
    publish(ch, x, "rk", b"1", headers={"a": 1})
    publish(ch, x, "rk", b"2")
    assert [get_one(ch, q, auto_ack=True)[2] for _ in range(2)] == [b"1", b"2"]


@pytest.mark.parametrize("name,kind", [
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers"),
])
def test_predeclared_amq_exchanges(ch, name, kind):
    ch.exchange_declare(name, kind, passive=True)
    ch.exchange_declare(name, kind, durable=True)  # equivalent redeclare is fine
    word = uniq("w")
    if kind == "headers":
        q = bound_queue(ch, name, "", arguments={"x-match": "all", "t": word})
        publish(ch, name, "", name.encode(), headers={"t": word})
    elif kind == "topic":
        q = bound_queue(ch, name, "flotilla.*." + word)
        publish(ch, name, "flotilla.x." + word, name.encode())
    else:
        q = bound_queue(ch, name, word)
        publish(ch, name, word, name.encode())
    assert get_one(ch, q, auto_ack=True)[2] == name.encode()
    pump(ch.connection, 0.1)
    assert get_all(ch, q) == []


def test_amq_fanout_reaches_every_bound_queue(ch):
    qs = [bound_queue(ch, "amq.fanout") for _ in range(2)]
    publish(ch, "amq.fanout", "", b"fan")
    for q in qs:
        assert get_one(ch, q, auto_ack=True)[2] == b"fan"


# ---------------------------------------------------------------------------
# exchange-to-exchange bindings, alternate exchanges, internal exchanges
# ---------------------------------------------------------------------------

def test_exchange_to_exchange_binding(ch):
    src = uniq("x.src")
    dst = uniq("x.dst")
    ch.exchange_declare(src, "topic", auto_delete=False)
    ch.exchange_declare(dst, "direct", auto_delete=False)
    try:
        ch.exchange_bind(dst, src, "k.*")
        q = bound_queue(ch, dst, "k.1")
        publish(ch, src, "k.1", b"via-e2e")
        publish(ch, src, "k.2", b"filtered-by-dst")
        publish(ch, src, "other", b"filtered-by-src")
        assert get_one(ch, q, auto_ack=True)[2] == b"via-e2e"
        pump(ch.connection, 0.2)
        assert get_all(ch, q) == []
        ch.exchange_unbind(dst, src, "k.*")
        publish(ch, src, "k.1", b"after-unbind")
        pump(ch.connection, 0.2)
        sync_point(ch)
        assert get_all(ch, q) == []
    finally:
        ch.exchange_delete(src)
        ch.exchange_delete(dst)


def test_exchange_to_exchange_cycle_delivers_once(ch):
    a = uniq("x.a")
    b = uniq("x.b")
    ch.exchange_declare(a, "fanout", auto_delete=False)
    ch.exchange_declare(b, "fanout", auto_delete=False)
    try:
        ch.exchange_bind(b, a)
        ch.exchange_bind(a, b)
        q = bound_queue(ch, a)
        ch.queue_bind(q, b)
        publish(ch, a, "", b"cycle")
        assert get_one(ch, q, auto_ack=True)[2] == b"cycle"
        pump(ch.connection, 0.2)
        assert get_all(ch, q) == []
    finally:
        ch.exchange_delete(a)
        ch.exchange_delete(b)


def test_alternate_exchange(ch):
    ae = uniq("x.ae")
    x = uniq("x.main")
    ch.exchange_declare(ae, "fanout", auto_delete=False)
    ch.exchange_declare(x, "direct", auto_delete=False, arguments={"alternate-exchange": ae})
    try:
        q_main = bound_queue(ch, x, "known")
        q_ae = bound_queue(ch, ae)
        returned = []
        ch.add_on_return_callback(lambda *a: returned.append(a))
        ch.basic_publish(x, "known", b"routed", mandatory=True)
        ch.basic_publish(x, "unknown", b"to-ae", mandatory=True)
        assert get_one(ch, q_main, auto_ack=True)[2] == b"routed"
        assert get_one(ch, q_ae, auto_ack=True)[2] == b"to-ae"
        pump(ch.connection, 0.3)
        # routed through the AE: not unroutable, so no basic.return
        assert returned == []
        assert get_all(ch, q_main) == [] and get_all(ch, q_ae) == []
    finally:
        ch.exchange_delete(x)
        ch.exchange_delete(ae)


def test_alternate_exchange_missing_is_unroutable(ch):
    x = uniq("x.main")
    ch.exchange_declare(x, "direct", auto_delete=True,
                        arguments={"alternate-exchange": uniq("x.does-not-exist")})
    bound_queue(ch, x, "known")
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, b)))
    ch.basic_publish(x, "unknown", b"lost", mandatory=True)
    pump_until_returned(ch, returned)
    assert returned[0][0].reply_code == 312
    assert returned[0][1] == b"lost"


def pump_until_returned(ch, returned, timeout=5.0):
    pump_until(ch.connection, lambda: returned, timeout, "basic.return")


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED")
def test_publish_to_internal_exchange_refused(ch):
    x = uniq("x.internal")
    ch.exchange_declare(x, "fanout", internal=True, auto_delete=False)
    try:
        ch.basic_publish(x, "", b"nope")
        with channel_error(403):
            sync_point(ch)
    finally:
        c2 = ch.connection.channel()
        c2.exchange_delete(x)


def test_internal_exchange_reachable_through_e2e_binding(ch):
    front = uniq("x.front")
    inner = uniq("x.inner")
    ch.exchange_declare(front, "fanout", auto_delete=False)
    ch.exchange_declare(inner, "fanout", internal=True, auto_delete=False)
    try:
        ch.exchange_bind(inner, front)
        q = bound_queue(ch, inner)
        publish(ch, front, "", b"through")
        assert get_one(ch, q, auto_ack=True)[2] == b"through"
    finally:
        ch.exchange_delete(front)
        ch.exchange_delete(inner)


# ---------------------------------------------------------------------------
# exchange declare / delete semantics
# ---------------------------------------------------------------------------

@pytest.mark.allow_errors(r"404|NOT_FOUND")
def test_exchange_declare_passive_missing_404(ch):
    with channel_error(404):
        ch.exchange_declare(uniq("x.missing"), passive=True)


def test_exchange_declare_passive_existing(ch):
    x = uniq("x")
    ch.exchange_declare(x, "topic", auto_delete=True)
    bound_queue(ch, x, "#")
    ch.exchange_declare(x, passive=True)
    # passive ignores the type and other flags
    ch.exchange_declare(x, "fanout", passive=True)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_exchange_redeclare_different_type_406(ch):
    x = uniq("x")
    ch.exchange_declare(x, "direct")
    try:
        with channel_error(406):
            ch.exchange_declare(x, "fanout")
    finally:
        ch.connection.channel().exchange_delete(x)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_exchange_redeclare_different_durability_406(ch):
    x = uniq("x")
    ch.exchange_declare(x, "direct", durable=False)
    try:
        with channel_error(406):
            ch.exchange_declare(x, "direct", durable=True)
    finally:
        ch.connection.channel().exchange_delete(x)


def test_exchange_redeclare_equivalent_ok(ch):
    x = uniq("x")
    ch.exchange_declare(x, "topic", durable=True)
    try:
        ch.exchange_declare(x, "topic", durable=True)
    finally:
        ch.exchange_delete(x)


@pytest.mark.allow_errors(r"503|COMMAND_INVALID|unknown exchange type|invalid")
def test_exchange_declare_unknown_type(ch):
    with pytest.raises(pika.exceptions.AMQPError) as ei:
        ch.exchange_declare(uniq("x"), "no-such-type")
        sync_point(ch)
    # RabbitMQ closes the connection with 503 COMMAND_INVALID
    code = getattr(ei.value, "reply_code", None)
    if code is None:
        code = connection_error_code(ei.value)
    assert code == 503, repr(ei.value)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_exchange_delete_if_unused(ch):
    x = uniq("x")
    ch.exchange_declare(x, "direct")
    q = bound_queue(ch, x, "k")
    with channel_error(406):
        ch.exchange_delete(x, if_unused=True)
    ch2 = ch.connection.channel()
    assert exchange_exists(ch.connection, x)
    ch2.queue_unbind(q, x, "k")
    ch2.exchange_delete(x, if_unused=True)
    assert not exchange_exists(ch.connection, x)


def test_exchange_delete_removes_bindings(ch):
    x = uniq("x")
    ch.exchange_declare(x, "fanout")
    q = bound_queue(ch, x)
    ch.exchange_delete(x)
    assert not exchange_exists(ch.connection, x)
    ch.exchange_declare(x, "fanout")
    try:
        publish(ch, x, "", b"after")
        pump(ch.connection, 0.2)
        sync_point(ch)
        assert get_all(ch, q) == []
    finally:
        ch.exchange_delete(x)


def test_exchange_delete_missing_is_ok(ch):
    # RabbitMQ 3.x treats deleting a missing exchange as success
    ch.exchange_delete(uniq("x.missing"))
    assert ch.is_open


def test_auto_delete_exchange_goes_with_last_binding(ch):
    x = uniq("x.ad")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = bound_queue(ch, x, "k")
    assert exchange_exists(ch.connection, x)
    ch.queue_unbind(q, x, "k")
    wait_until(lambda: not exchange_exists(ch.connection, x), 10, message="auto-delete exchange removed")


@pytest.mark.allow_errors(r"404|NOT_FOUND")
def test_publish_to_missing_exchange_404(ch):
    ch.basic_publish(uniq("x.missing"), "k", b"x")
    with channel_error(404):
        sync_point(ch)


@pytest.mark.allow_errors(r"404|NOT_FOUND")
def test_bind_missing_exchange_404(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    with channel_error(404):
        ch.queue_bind(q, uniq("x.missing"), "k")


@pytest.mark.allow_errors(r"404|NOT_FOUND")
def test_bind_missing_queue_404(ch):
    with channel_error(404):
        ch.queue_bind(uniq("q.missing"), "amq.direct", "k")
