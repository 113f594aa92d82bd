"""What survives a restart (SIGTERM) or a crash (SIGKILL): durable queues,
exchanges and bindings, and persistent messages that were confirmed (pika)."""

import pika
import pytest

from helpers import exchange_exists, get_all, pump_until, queue_state


def publish_confirmed(ch, queue, bodies, persistent=True, exchange="", routing_key=None):
    if not getattr(ch, "_test_confirming", False):
        ch.confirm_delivery()
        ch._test_confirming = True
    for b in bodies:
        ch.basic_publish(exchange, routing_key if routing_key is not None else queue, b,
                         pika.BasicProperties(delivery_mode=2 if persistent else 1))


# Regression: recovery once ran inside a log statement and was skipped when
# the log level was above notice (the bench runs brokers at warning+).
@pytest.mark.parametrize("level", ["warning+", "error+", "critical+"])
def test_recovery_does_not_depend_on_the_log_level(make_broker, connect, level):
    b = make_broker(args=("--log-enable", level))
    c = connect(b)
    ch = c.channel()
    ch.queue_declare("lvl-q", durable=True)
    publish_confirmed(ch, "lvl-q", [b"a", b"b"])
    c.close()
    b.restart()
    c = connect(b)
    assert queue_state(c, "lvl-q") == (2, 0)
    assert get_all(c.channel(), "lvl-q") == [b"a", b"b"]


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_durable_queue_and_persistent_messages_survive(broker, connect, how):
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("durable-q", durable=True)
    ch.queue_declare("transient-q", durable=False)
    publish_confirmed(ch, "durable-q", [b"p1", b"p2", b"p3"])
    c.close()
    broker.restart(kill=(how == "crash"))
    c = connect(broker)
    assert queue_state(c, "transient-q") is None, "non-durable queue survived a restart"
    assert queue_state(c, "durable-q") == (3, 0)
    ch = c.channel()
    method, props, body = ch.basic_get("durable-q", auto_ack=True)
    assert body == b"p1"
    assert props.delivery_mode == 2
    assert get_all(ch, "durable-q") == [b"p2", b"p3"]


def test_transient_messages_in_durable_queue_are_dropped_on_restart(broker, connect):
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("dq", durable=True)
    publish_confirmed(ch, "dq", [b"transient"], persistent=False)
    publish_confirmed(ch, "dq", [b"persistent"], persistent=True)
    c.close()
    broker.restart()
    ch = connect(broker).channel()
    assert get_all(ch, "dq") == [b"persistent"]


# Only for a clean restart: after a crash RabbitMQ may redeliver messages whose
# acks it had not yet written (at-least-once).
@pytest.mark.parametrize("how", ["restart"])
def test_acked_messages_do_not_come_back(broker, connect, how):
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("dq", durable=True)
    publish_confirmed(ch, "dq", [b"m%d" % i for i in range(10)])
    for i in range(6):
        method, _, body = ch.basic_get("dq", auto_ack=False)
        assert body == b"m%d" % i
        ch.basic_ack(method.delivery_tag)
    # one unacked delivery: it must come back, marked redelivered or not
    method, _, body = ch.basic_get("dq", auto_ack=False)
    assert body == b"m6"
    ch.basic_qos(prefetch_count=0)  # round trip so the acks have reached the broker
    if how == "restart":
        c.close()
    broker.restart(kill=(how == "crash"))
    ch = connect(broker).channel()
    assert get_all(ch, "dq") == [b"m6", b"m7", b"m8", b"m9"]


def test_messages_consumed_with_auto_ack_while_confirming_stay_gone(broker, connect):
    # A consumer is waiting, so each confirmed publish is delivered (and, with
    # auto-ack, settled) in the same step that writes it to the store: the
    # store must see the publish before that settlement, or the message
    # would come back after a restart.
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("dq", durable=True)
    got = []
    ch.basic_consume("dq", lambda ch_, m, p, body: got.append(body), auto_ack=True)
    ch.confirm_delivery()
    for i in range(50):
        ch.basic_publish("", "dq", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
    pump_until(c, lambda: len(got) == 50, message="deliveries")
    c.close()
    broker.restart()
    ch = connect(broker).channel()
    assert get_all(ch, "dq") == []


def test_durable_exchange_and_bindings_survive_restart(broker, connect):
    c = connect(broker)
    ch = c.channel()
    ch.exchange_declare("dx", "topic", durable=True)
    ch.exchange_declare("tx", "fanout", durable=False)
    ch.exchange_declare("dx2", "fanout", durable=True)
    ch.exchange_bind("dx2", "dx", "e2e.#")
    ch.queue_declare("dq", durable=True)
    ch.queue_bind("dq", "dx", "a.*")
    ch.queue_declare("dq2", durable=True)
    ch.queue_bind("dq2", "dx2")
    c.close()
    broker.restart()
    c = connect(broker)
    assert exchange_exists(c, "dx")
    assert exchange_exists(c, "dx2")
    assert not exchange_exists(c, "tx"), "non-durable exchange survived a restart"
    ch = c.channel()
    ch.exchange_declare("dx", "topic", durable=True)  # still equivalent: no 406
    ch.confirm_delivery()
    ch.basic_publish("dx", "a.b", b"via-binding", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("dx", "e2e.x", b"via-e2e", pika.BasicProperties(delivery_mode=2))
    assert get_all(ch, "dq") == [b"via-binding"]
    assert get_all(ch, "dq2") == [b"via-e2e"]


def test_durable_queue_arguments_survive_restart(broker, connect):
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("limited", durable=True, arguments={"x-max-length": 2})
    c.close()
    broker.restart()
    ch = connect(broker).channel()
    # redeclaring with the same arguments is fine, with others is 406
    ch.queue_declare("limited", durable=True, arguments={"x-max-length": 2})
    publish_confirmed(ch, "limited", [b"1", b"2", b"3"])
    assert get_all(ch, "limited") == [b"2", b"3"]


def test_deleted_durable_queue_stays_deleted(broker, connect):
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("gone", durable=True)
    publish_confirmed(ch, "gone", [b"x"])
    ch.queue_delete("gone")
    c.close()
    broker.restart()
    assert queue_state(connect(broker), "gone") is None


def test_purged_durable_queue_stays_empty(broker, connect):
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("purged", durable=True)
    publish_confirmed(ch, "purged", [b"x", b"y"])
    assert ch.queue_purge("purged").method.message_count == 2
    c.close()
    broker.restart()
    assert queue_state(connect(broker), "purged") == (0, 0)


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_many_persistent_messages_survive(broker, connect, how):
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("bulk", durable=True)
    impl = ch._impl
    acked = []
    done = []
    impl.confirm_delivery(lambda f: acked.append(f.method), callback=lambda f: done.append(1))
    pump_until(c, lambda: done, 5)
    n = 2000
    for i in range(n):
        impl.basic_publish("", "bulk", b"%06d" % i, pika.BasicProperties(delivery_mode=2))

    def confirmed_all():
        tags = set()
        last = 0
        for m in acked:
            assert m.NAME == "Basic.Ack", m
            if m.multiple:
                tags.update(range(last + 1, m.delivery_tag + 1))
            else:
                tags.add(m.delivery_tag)
            last = max(last, m.delivery_tag)
        return len(tags) == n
    pump_until(c, confirmed_all, 30, "confirms for %d persistent messages" % n)
    if how == "restart":
        c.close()
    broker.restart(kill=(how == "crash"))
    ch = connect(broker).channel()
    assert get_all(ch, "bulk") == [b"%06d" % i for i in range(n)]


@pytest.mark.broker_args("--truncate", "yes")
def test_truncate_discards_state(broker, connect):
    c = connect(broker)
    c.channel().queue_declare("durable-q", durable=True)
    c.close()
    broker.restart()
    assert queue_state(connect(broker), "durable-q") is None
