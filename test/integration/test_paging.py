"""Queues longer than memory: with --queue-memory-limit, a queue keeps that
many message bytes in memory and pages the rest of its backlog out to the
data directory, reading it back in order as consumers catch up.
"""

import os

import pika
import pytest

import helpers

pytestmark = pytest.mark.timeout(240)


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def paging_bytes(broker):
    d = broker.data_dir / "paging"
    return sum(p.stat().st_size for p in d.iterdir()) if d.exists() else 0


def publish(port, queue, count, size, persistent=False):
    c = helpers.connect(port)
    ch = c.channel()
    props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
    pad = b"p" * size
    for i in range(count):
        ch.basic_publish("", queue, b"%08d" % i + pad, props)
    # A round trip on the channel: every publish before it was enqueued.
    depth = ch.queue_declare(queue, passive=True).method.message_count
    helpers.close_quietly(c)
    return depth


def consume_all(port, queue, count):
    """Consumes `count` messages with acks; returns their sequence numbers."""
    c = helpers.connect(port)
    ch = c.channel()
    ch.basic_qos(prefetch_count=500)
    seen = []
    for method, _props, body in ch.consume(queue, inactivity_timeout=30):
        assert method is not None, "stalled after %d messages" % len(seen)
        seen.append(int(body[:8]))
        if len(seen) % 500 == 0 or len(seen) == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if len(seen) == count:
            break
    ch.cancel()
    helpers.close_quietly(c)
    return seen


@pytest.mark.broker_args("--queue-memory-limit", "1MiB")
def test_backlog_larger_than_the_limit_stays_out_of_memory(broker):
    q = helpers.uniq()
    c = helpers.connect(broker.port)
    c.channel().queue_declare(q)
    helpers.close_quietly(c)
    n, size = 60000, 2048  # ~120 MiB of bodies
    rss_before = rss_bytes(broker.pid)
    assert publish(broker.port, q, n, size) == n
    # The bodies are on disk, not in memory.
    assert paging_bytes(broker) > (n - 1000) * size
    grown = rss_bytes(broker.pid) - rss_before
    assert grown < 60 * 1024 * 1024, "RSS grew by %d bytes" % grown
    # Read back in order, none lost or repeated.
    assert consume_all(broker.port, q, n) == list(range(n))
    # Consumed pages are freed.
    helpers.wait_until(lambda: paging_bytes(broker) < 2 * 1024 * 1024, timeout=10)


@pytest.mark.broker_args("--queue-memory-limit", "256KiB")
def test_paged_persistent_messages_survive_a_restart_in_order(broker):
    q = helpers.uniq()
    c = helpers.connect(broker.port)
    c.channel().queue_declare(q, durable=True)
    helpers.close_quietly(c)
    n = 20000
    assert publish(broker.port, q, n, 1024, persistent=True) == n
    assert paging_bytes(broker) > 10 * 1024 * 1024
    broker.restart()
    # Recovery pages the long queue out again, and nothing is left of the
    # old run's page files.
    assert consume_all(broker.port, q, n) == list(range(n))
    c = helpers.connect(broker.port)
    assert c.channel().queue_declare(q, passive=True).method.message_count == 0
    helpers.close_quietly(c)


@pytest.mark.broker_args("--queue-memory-limit", "0")
def test_limit_zero_never_pages(broker):
    q = helpers.uniq()
    c = helpers.connect(broker.port)
    c.channel().queue_declare(q)
    helpers.close_quietly(c)
    assert publish(broker.port, q, 2000, 1024) == 2000
    assert paging_bytes(broker) == 0
    assert consume_all(broker.port, q, 2000) == list(range(2000))
