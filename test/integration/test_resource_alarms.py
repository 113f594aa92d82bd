"""Resource alarms: above the memory high watermark, below the disk free
limit, and when the journal cannot write (disk full), connections that
publish are blocked (connection.blocked, as RabbitMQ does) instead of the
broker growing until the OOM killer comes or failing writes. Once the
resource is back they resume and nothing confirmed is lost.

The disk tests mount a small tmpfs on the broker's data directory (needs
root, which the CI has; see ../shared/PLATFORM.md) and unmount it after.
"""

import json
import subprocess
import threading
import time

import pika
import pytest

import helpers

pytestmark = pytest.mark.timeout(180)


def depth(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


class Publisher(threading.Thread):
    """Publishes to `queue` until stopped, recording blocked/unblocked
    notifications and, with confirms, every confirmed sequence number."""

    def __init__(self, port, queue, size, persistent=False, confirm=False):
        super().__init__(daemon=True)
        self.port, self.queue, self.size = port, queue, size
        self.persistent, self.confirm = persistent, confirm
        self.blocked = threading.Event()
        self.unblocked = threading.Event()
        self.stop = threading.Event()
        self.reasons = []
        self.published = 0
        self.confirmed = []
        self.error = None

    def on_blocked(self, _conn, frame):
        self.reasons.append(frame.method.reason)
        self.blocked.set()

    def on_unblocked(self, _conn, _frame):
        self.unblocked.set()

    def run(self):
        try:
            c = helpers.connect(self.port, blocked_connection_timeout=None)
            c.add_on_connection_blocked_callback(self.on_blocked)
            c.add_on_connection_unblocked_callback(self.on_unblocked)
            ch = c.channel()
            if self.confirm:
                ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2 if self.persistent else 1)
            pad = b"x" * self.size
            seq = 0
            while not self.stop.is_set():
                seq += 1
                ch.basic_publish("", self.queue, b"%d:" % seq + pad, props)
                self.published += 1
                if self.confirm:
                    self.confirmed.append(seq)
                c.process_data_events(0)
            # A round trip on the same channel: the broker has processed
            # every publish before it.
            ch.queue_declare(self.queue, passive=True)
            c.close()
        except Exception as e:  # reported by the test
            self.error = e


@pytest.mark.broker_args("--memory-high-watermark", "300MiB",
                         "--queue-memory-limit", "0")
def test_memory_alarm_blocks_publishers_until_memory_is_freed(broker):
    q = helpers.uniq()
    admin = helpers.connect(broker.port)
    ach = admin.channel()
    ach.queue_declare(q)
    # Alarm events on the management topic exchange (docs/management.md).
    events = ach.queue_declare("", exclusive=True).method.queue
    ach.queue_bind(events, "qmf.default.topic", "alarm.#")
    pub = Publisher(broker.port, q, 1 << 20)
    pub.start()
    assert pub.blocked.wait(60), "never blocked; log:\n" + broker.log_tail()
    assert pub.reasons == ["low on memory"]
    # Blocked means nothing more is taken in from that connection...
    before = depth(ach, q)
    time.sleep(2.5)
    assert depth(ach, q) == before
    assert not pub.unblocked.is_set()
    # ...while other connections work: free memory by purging.
    purged = ach.queue_purge(q).method.message_count
    assert purged == before
    assert pub.unblocked.wait(30), "never unblocked; log:\n" + broker.log_tail()
    pub.stop.set()
    pub.join(60)
    assert not pub.is_alive()
    assert pub.error is None, pub.error
    # Every publish was taken in once the alarm cleared: none was lost.
    assert depth(ach, q) == pub.published - purged
    ach.queue_purge(q)
    got = []
    while True:
        m, props, body = ach.basic_get(events, auto_ack=True)
        if m is None:
            break
        ev = json.loads(body)
        got.append((m.routing_key, ev["name"], ev["details"]["publishers_blocked"]))
    assert got == [("alarm.raised", "memory", "true"),
                   ("alarm.cleared", "memory", "false")]
    helpers.close_quietly(admin)
    log = broker.log_text()
    assert "resource alarm set: memory" in log
    assert "resource alarm cleared: memory" in log


@pytest.fixture
def tmpfs_broker(make_broker):
    """make(size_mb, args) -> a started broker whose data dir is a tmpfs."""
    made = []

    def make(size_mb, args=(), allowed_errors=()):
        b = make_broker(args=args, allowed_errors=allowed_errors, start=False)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb,
                        "flotilla-test", str(b.data_dir)], check=True)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        if b.running():
            b.stop()
        subprocess.run(["umount", "-l", str(b.data_dir)], check=False)


def fill(path, mb):
    with open(path, "wb") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(mb):
            f.write(chunk)


def test_disk_free_limit_blocks_publishers_until_space_is_freed(tmpfs_broker):
    b = tmpfs_broker(64, args=("--disk-free-limit", "20MiB"))
    filler = b.data_dir / "filler"
    fill(filler, 24)  # 40 MiB free: above the limit, for now
    q = helpers.uniq()
    admin = helpers.connect(b.port)
    admin.channel().queue_declare(q, durable=True)
    helpers.close_quietly(admin)
    pub = Publisher(b.port, q, 16 << 10, persistent=True, confirm=True)
    pub.start()
    # pika's blocking channel waits inside basic_publish for the confirm of
    # the held message, and hands connection.blocked to the callback only
    # after it: see the broker's side first, the client's once unblocked.
    helpers.wait_until(lambda: "blocked: low on disk" in b.log_text(), timeout=60)
    n = len(pub.confirmed)
    time.sleep(2.5)
    assert len(pub.confirmed) == n
    filler.unlink()
    assert pub.unblocked.wait(30), "never unblocked; log:\n" + b.log_tail()
    assert pub.reasons == ["low on disk"]
    pub.stop.set()
    pub.join(60)
    assert pub.error is None, pub.error
    confirmed = len(pub.confirmed)
    assert confirmed > n
    # Everything confirmed is on disk.
    b.restart()
    c = helpers.connect(b.port)
    assert depth(c.channel(), q) == confirmed
    helpers.close_quietly(c)
    assert "resource alarm set: disk free space" in b.log_text()


def test_full_disk_never_loses_a_confirmed_message(tmpfs_broker):
    # No free-space limit: the journal's writes themselves fail (ENOSPC).
    b = tmpfs_broker(48, args=("--disk-free-limit", "0"),
                     allowed_errors=(r"journal write failed",))
    filler = b.data_dir / "filler"
    fill(filler, 42)
    q = helpers.uniq()
    admin = helpers.connect(b.port)
    ach = admin.channel()
    ach.queue_declare(q, durable=True)
    pub = Publisher(b.port, q, 64 << 10, persistent=True, confirm=True)
    pub.start()
    helpers.wait_until(lambda: "journal write failed" in b.log_text(), timeout=60)
    # Confirms wait (nothing is nacked or dropped) and the broker lives on.
    n = len(pub.confirmed)
    time.sleep(2.5)
    assert len(pub.confirmed) == n
    assert b.running()
    ach.queue_declare(q, passive=True)
    # Another connection that publishes is blocked.
    other = Publisher(b.port, q, 16, persistent=False)
    other.start()
    assert other.blocked.wait(30), "never blocked; log:\n" + b.log_tail()
    assert other.reasons == ["low on disk"]
    # Free space: the store retries, confirms flow, publishers resume.
    filler.unlink()
    assert other.unblocked.wait(30), "never unblocked; log:\n" + b.log_tail()
    helpers.wait_until(lambda: len(pub.confirmed) > n + 10, timeout=30)
    pub.stop.set()
    other.stop.set()
    pub.join(60)
    other.join(60)
    assert pub.error is None, pub.error
    assert other.error is None, other.error
    confirmed = len(pub.confirmed)
    helpers.close_quietly(admin)
    assert "journal writes work again" in b.log_text()
    # Every confirmed persistent message survives a restart (the transient
    # ones of `other` do not, by design).
    b.restart()
    c = helpers.connect(b.port)
    ch = c.channel()
    assert depth(ch, q) == confirmed
    seen = []
    for _ in range(confirmed):
        m, _props, body = ch.basic_get(q, auto_ack=True)
        seen.append(int(body.split(b":", 1)[0]))
    assert seen == pub.confirmed
    helpers.close_quietly(c)
