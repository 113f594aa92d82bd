"""No confirmed message is lost: kill -9 at random moments and at named
crash points, then restart and check mechanically.

Bodies carry the publisher's sequence number. The publisher records what was
confirmed; consumers record what they received and whether it was flagged
redelivered. After the crashes, every confirmed sequence must have been
received, and a sequence received twice only as a redelivery.
"""

import random
import threading
import time

import pika
import pytest

import helpers

QUEUE = "crash-q"


def declare(port):
    c = helpers.connect(port)
    try:
        c.channel().queue_declare(QUEUE, durable=True)
    finally:
        helpers.close_quietly(c)


class Publisher(threading.Thread):
    """Publishes persistent messages with confirms until the broker dies."""

    def __init__(self, port, start_seq, confirmed):
        super().__init__(daemon=True)
        self.port = port
        self.seq = start_seq
        self.confirmed = confirmed

    def run(self):
        try:
            c = helpers.connect(self.port)
            ch = c.channel()
            ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2)
            while True:
                body = b"seq=%d" % self.seq
                ch.basic_publish("", QUEUE, body, props)  # returns when confirmed
                self.confirmed.add(self.seq)
                self.seq += 1
        except Exception:
            pass  # The broker was killed.


class Receiver(threading.Thread):
    """Consumes with manual acks, recording (seq, redelivered)."""

    def __init__(self, port, received):
        super().__init__(daemon=True)
        self.port = port
        self.received = received

    def run(self):
        try:
            c = helpers.connect(self.port)
            ch = c.channel()
            ch.basic_qos(prefetch_count=50)

            def on_message(ch_, method, props, body):
                seq = int(body.split(b"=")[1])
                self.received.append((seq, method.redelivered))
                ch_.basic_ack(method.delivery_tag)

            ch.basic_consume(QUEUE, on_message)
            ch.start_consuming()
        except Exception:
            pass


def drain(port, received):
    c = helpers.connect(port)
    try:
        ch = c.channel()
        while True:
            method, props, body = ch.basic_get(QUEUE, auto_ack=True)
            if method is None:
                break
            received.append((int(body.split(b"=")[1]), method.redelivered))
    finally:
        helpers.close_quietly(c)


def check_no_loss(confirmed, received):
    seen = {}
    for seq, redelivered in received:
        if seq in seen:
            assert redelivered, "seq %d delivered twice without redelivered" % seq
        seen[seq] = seen.get(seq, 0) + 1
    missing = sorted(confirmed - set(seen))
    assert not missing, "%d confirmed messages lost, e.g. %s" % (
        len(missing), missing[:10])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_during_confirmed_publishing_and_consuming(make_broker):
    rng = random.Random(1234)
    b = make_broker()
    declare(b.port)
    confirmed = set()
    received = []
    seq = 0
    for round_ in range(6):
        pub = Publisher(b.port, seq, confirmed)
        rec = Receiver(b.port, received) if round_ % 2 else None
        pub.start()
        if rec:
            rec.start()
        time.sleep(rng.uniform(0.3, 1.2))
        b.kill()
        pub.join(10)
        if rec:
            rec.join(10)
        seq = pub.seq + 1
        b.start()
    drain(b.port, received)
    assert len(confirmed) > 100, "the publisher confirmed too little to mean much"
    check_no_loss(confirmed, received)


@pytest.mark.parametrize("point", [
    "journal.after_write_before_sync",
    "journal.after_sync",
    "store.after_sync_before_confirm",
])
@pytest.mark.timeout(120)
def test_crash_point_loses_no_confirmed_message(make_broker, monkeypatch, point):
    b = make_broker()
    declare(b.port)
    confirmed = set()
    # Some confirmed messages before the crash point is armed.
    pub = Publisher(b.port, 0, confirmed)
    pub.start()
    helpers.wait_until(lambda: len(confirmed) >= 50, timeout=30)
    b.stop()
    pub.join(10)
    # Restart with the crash point armed: the next sync dies there.
    monkeypatch.setenv("FLOTILLA_CRASH_POINT", point)
    b.start()
    monkeypatch.delenv("FLOTILLA_CRASH_POINT")
    pub = Publisher(b.port, 100000, confirmed)
    pub.start()
    pub.join(30)
    assert b.proc.wait(10) == 99, "the crash point was not reached"
    b._expect_exit = True
    assert "crash point %s" % point in b.log_text()
    b.start()
    received = []
    drain(b.port, received)
    check_no_loss(confirmed, received)
    assert len(received) >= 50
