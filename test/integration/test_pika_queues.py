"""queue.declare / bind / unbind / purge / delete semantics (pika)."""

import pika
import pika.exceptions
import pytest

from helpers import (Consumer, channel_error, get_all, get_one, pump, queue_exists,
                     queue_state, sync_point, uniq, wait_until)


def test_declare_returns_name_and_counts(ch):
    q = uniq()
    ok = ch.queue_declare(q)
    try:
        assert ok.method.queue == q
        assert ok.method.message_count == 0
        assert ok.method.consumer_count == 0
        for i in range(3):
            ch.basic_publish("", q, b"m%d" % i)
        wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 3,
                   5, message="message_count == 3")
        Consumer(ch, q, auto_ack=False, arguments=None)
        c2 = ch.connection.channel()
        ok = c2.queue_declare(q, passive=True)
        assert ok.method.consumer_count == 1
        # unacked deliveries are not counted as ready messages
        ch.connection.process_data_events(0.2)
        ok = c2.queue_declare(q)  # non-passive redeclare also reports counts
        assert ok.method.queue == q
        assert ok.method.consumer_count == 1
        assert ok.method.message_count == 0
    finally:
        ch.connection.channel().queue_delete(q)


@pytest.mark.allow_errors(r"404|NOT_FOUND")
def test_declare_passive_missing_404(ch):
    with channel_error(404) as ei:
        ch.queue_declare(uniq("q.missing"), passive=True)
    assert "NOT_FOUND" in ei.value.reply_text


def test_declare_passive_existing(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ok = ch.queue_declare(q, passive=True)
    assert ok.method.queue == q


def test_server_named_queue(ch):
    names = set()
    for _ in range(5):
        ok = ch.queue_declare("", exclusive=True)
        assert ok.method.queue.startswith("amq.gen-"), ok.method.queue
        names.add(ok.method.queue)
    assert len(names) == 5
    q = names.pop()
    ch.basic_publish("", q, b"to-server-named")
    assert get_one(ch, q, auto_ack=True)[2] == b"to-server-named"


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED")
def test_declare_amq_prefixed_queue_refused(ch):
    with channel_error(403):
        ch.queue_declare(uniq("amq.mine"))


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_redeclare_with_different_flags_406(ch):
    q = uniq()
    ch.queue_declare(q, durable=False)
    try:
        with channel_error(406):
            ch.queue_declare(q, durable=True)
    finally:
        ch.connection.channel().queue_delete(q)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_redeclare_with_different_arguments_406(ch):
    q = uniq()
    ch.queue_declare(q, arguments={"x-max-length": 10})
    try:
        with channel_error(406):
            ch.queue_declare(q, arguments={"x-max-length": 20})
    finally:
        ch.connection.channel().queue_delete(q)


def test_redeclare_equivalent_ok(ch):
    q = uniq()
    ch.queue_declare(q, durable=True, arguments={"x-max-length": 10})
    try:
        ok = ch.queue_declare(q, durable=True, arguments={"x-max-length": 10})
        assert ok.method.queue == q
    finally:
        ch.queue_delete(q)


# ---------------------------------------------------------------------------
# exclusive queues
# ---------------------------------------------------------------------------

@pytest.mark.allow_errors(r"405|RESOURCE_LOCKED")
def test_exclusive_queue_locked_for_other_connections(shared_broker, connect):
    owner = connect(shared_broker)
    other = connect(shared_broker)
    och = owner.channel()
    q = uniq("q.excl")
    och.queue_declare(q, exclusive=True)
    with channel_error(405):
        other.channel().queue_declare(q)
    with channel_error(405):
        other.channel().queue_declare(q, passive=True)
    with channel_error(405):
        other.channel().basic_consume(q, lambda *a: None)
    with channel_error(405):
        other.channel().queue_delete(q)
    with channel_error(405):
        other.channel().queue_purge(q)
    # the owner can use it freely, from any of its channels
    och2 = owner.channel()
    och2.basic_publish("", q, b"mine")
    assert get_one(och2, q, auto_ack=True)[2] == b"mine"
    assert other.is_open


@pytest.mark.allow_errors(r"405|RESOURCE_LOCKED")
def test_exclusive_queue_deleted_when_owner_closes(shared_broker, connect):
    owner = connect(shared_broker)
    watcher = connect(shared_broker)
    q = uniq("q.excl")
    owner.channel().queue_declare(q, exclusive=True)
    owner.close()
    wait_until(lambda: queue_state(watcher, q) is None, 10,
               message="exclusive queue deleted with its connection")


# ---------------------------------------------------------------------------
# auto-delete
# ---------------------------------------------------------------------------

def test_auto_delete_after_last_consumer_cancels(ch):
    q = uniq("q.ad")
    ch.queue_declare(q, auto_delete=True)
    c1 = Consumer(ch, q)
    c2 = Consumer(ch, q)
    c1.cancel()
    assert queue_exists(ch.connection, q), "deleted while a consumer remained"
    c2.cancel()
    wait_until(lambda: not queue_exists(ch.connection, q), 10,
               message="auto-delete queue removed after last cancel")


def test_auto_delete_queue_without_consumers_stays(ch):
    q = uniq("q.ad")
    ch.queue_declare(q, auto_delete=True)
    pump(ch.connection, 0.5)
    assert queue_exists(ch.connection, q)
    ch.queue_delete(q)


def test_auto_delete_when_consumer_channel_closes(shared_broker, connect):
    c = connect(shared_broker)
    ch = c.channel()
    q = uniq("q.ad")
    ch.queue_declare(q, auto_delete=True)
    Consumer(ch, q)
    watcher = connect(shared_broker)
    assert queue_exists(watcher, q)
    ch.close()
    wait_until(lambda: not queue_exists(watcher, q), 10,
               message="auto-delete queue removed after consumer's channel closed")


# ---------------------------------------------------------------------------
# bind / unbind
# ---------------------------------------------------------------------------

def test_bind_unbind(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.direct", q + ".k")
    ch.basic_publish("amq.direct", q + ".k", b"bound")
    assert get_one(ch, q, auto_ack=True)[2] == b"bound"
    ch.queue_unbind(q, "amq.direct", q + ".k")
    ch.basic_publish("amq.direct", q + ".k", b"unbound")
    pump(ch.connection, 0.2)
    sync_point(ch)
    assert get_all(ch, q) == []


def test_bind_twice_is_idempotent(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.direct", q)
    ch.queue_bind(q, "amq.direct", q)
    ch.basic_publish("amq.direct", q, b"once")
    assert get_one(ch, q, auto_ack=True)[2] == b"once"
    pump(ch.connection, 0.2)
    assert get_all(ch, q) == []
    # one unbind removes the (single) binding
    ch.queue_unbind(q, "amq.direct", q)
    ch.basic_publish("amq.direct", q, b"gone")
    pump(ch.connection, 0.2)
    sync_point(ch)
    assert get_all(ch, q) == []


def test_unbind_missing_binding_is_ok(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(q, "amq.direct", "never-bound")
    assert ch.is_open


def test_bindings_with_arguments_are_distinct(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.headers", "", arguments={"x-match": "all", "h": 1})
    ch.queue_bind(q, "amq.headers", "", arguments={"x-match": "all", "h": 2})
    ch.basic_publish("amq.headers", "", b"one", pika.BasicProperties(headers={"h": 1}))
    ch.basic_publish("amq.headers", "", b"two", pika.BasicProperties(headers={"h": 2}))
    assert [get_one(ch, q, auto_ack=True)[2] for _ in range(2)] == [b"one", b"two"]
    ch.queue_unbind(q, "amq.headers", "", arguments={"x-match": "all", "h": 1})
    ch.basic_publish("amq.headers", "", b"one-again", pika.BasicProperties(headers={"h": 1}))
    ch.basic_publish("amq.headers", "", b"two-again", pika.BasicProperties(headers={"h": 2}))
    assert get_one(ch, q, auto_ack=True)[2] == b"two-again"
    pump(ch.connection, 0.2)
    assert get_all(ch, q) == []


# ---------------------------------------------------------------------------
# purge / delete
# ---------------------------------------------------------------------------

def test_purge_reports_message_count(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i)
    wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 5, 5)
    assert ch.queue_purge(q).method.message_count == 5
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert ch.queue_purge(q).method.message_count == 0


def test_purge_keeps_unacked_messages(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    method, _, _ = get_one(ch, q, auto_ack=False)
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert get_one(ch, q, auto_ack=True)[2] == b"m0"


def test_delete_reports_message_count(ch):
    q = uniq()
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, b"m%d" % i)
    wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 4, 5)
    assert ch.queue_delete(q).method.message_count == 4
    assert not queue_exists(ch.connection, q)


def test_delete_missing_queue_is_ok(ch):
    ok = ch.queue_delete(uniq("q.missing"))
    assert ok.method.message_count == 0


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_delete_if_unused_with_consumer_406(ch):
    q = uniq()
    ch.queue_declare(q)
    c = Consumer(ch, q)
    c2 = ch.connection.channel()
    with channel_error(406):
        c2.queue_delete(q, if_unused=True)
    assert queue_exists(ch.connection, q)
    c.cancel()
    ch.queue_delete(q, if_unused=True)
    assert not queue_exists(ch.connection, q)


@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED")
def test_delete_if_empty_with_messages_406(ch):
    q = uniq()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"keep")
    wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 1, 5)
    with channel_error(406):
        ch.queue_delete(q, if_empty=True)
    c2 = ch.connection.channel()
    assert c2.queue_declare(q, passive=True).method.message_count == 1
    assert get_all(c2, q) == [b"keep"]
    c2.queue_delete(q, if_empty=True)
    assert not queue_exists(ch.connection, q)


def test_deleted_queue_is_unbound(ch):
    q = uniq()
    ch.queue_declare(q)
    ch.queue_bind(q, "amq.direct", q)
    ch.queue_delete(q)
    ch.queue_declare(q)  # same name, new queue: the old binding is gone
    try:
        ch.basic_publish("amq.direct", q, b"x")
        pump(ch.connection, 0.2)
        sync_point(ch)
        assert get_all(ch, q) == []
    finally:
        ch.queue_delete(q)


def test_durable_queue_declare(ch):
    q = uniq("q.durable")
    ok = ch.queue_declare(q, durable=True)
    try:
        assert ok.method.queue == q
        ch.basic_publish("", q, b"persist", pika.BasicProperties(delivery_mode=2))
        assert get_one(ch, q, auto_ack=True)[2] == b"persist"
    finally:
        ch.queue_delete(q)
