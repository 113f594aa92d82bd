"""Small helpers shared by the pika-based integration tests."""

import atexit
import contextlib
import ctypes
import itertools
import os
import re
import signal
import subprocess
import time
import uuid

import pika
import pika.exceptions
import pytest

_counter = itertools.count(1)
_live_processes = []
_run = uuid.uuid4().hex[:6]


def uniq(prefix="q"):
    """A name no other test uses: prefix-<run>-<n>."""
    return "%s-%s-%d" % (prefix, _run, next(_counter))


def wait_until(pred, timeout=10.0, interval=0.05, message=None):
    """Poll pred() until it returns something truthy; return that value.
    Raises AssertionError after ``timeout`` seconds; ``message`` (a string,
    or a function returning one, e.g. to show the last values seen) says
    what was awaited."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            if callable(message):
                message = message()
            raise AssertionError("condition not met within %.1fs: %s (last value %r)"
                                 % (timeout, message or getattr(pred, "__name__", pred), last))
        time.sleep(interval)


def params(port, user="guest", password="guest", vhost="/", **kw):
    kw.setdefault("heartbeat", 0)
    kw.setdefault("connection_attempts", 1)
    kw.setdefault("socket_timeout", 10)
    kw.setdefault("blocked_connection_timeout", 60)
    return pika.ConnectionParameters(host="127.0.0.1", port=port, virtual_host=vhost,
                                     credentials=pika.PlainCredentials(user, password),
                                     **kw)


def connect(port, **kw):
    return pika.BlockingConnection(params(port, **kw))


def close_quietly(c):
    try:
        if c.is_open:
            c.close()
    except Exception:
        pass


def pump(conn, seconds):
    """Let pika process I/O (deliveries, returns, cancels) for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        conn.process_data_events(time_limit=min(remaining, 0.1))


def pump_until(conn, pred, timeout=10.0, message=None):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            if callable(message):
                message = message()
            raise AssertionError("condition not met within %.1fs: %s (last value %r)"
                                 % (timeout, message or getattr(pred, "__name__", pred), v))
        conn.process_data_events(time_limit=0.05)


class Consumer:
    """basic.consume that records deliveries as (method, properties, body)."""

    def __init__(self, ch, queue, auto_ack=False, **kw):
        self.ch = ch
        self.conn = ch.connection
        self.messages = []
        self.tag = ch.basic_consume(queue, self._on_message, auto_ack=auto_ack, **kw)

    def _on_message(self, ch, method, props, body):
        self.messages.append((method, props, body))

    @property
    def bodies(self):
        return [m[2] for m in self.messages]

    def wait(self, n, timeout=10.0):
        """Wait until at least n deliveries have arrived; returns them."""
        pump_until(self.conn, lambda: len(self.messages) >= n, timeout,
                   "%d deliveries (have %d)" % (n, len(self.messages)))
        return self.messages

    def settle(self, seconds=0.5):
        """Process I/O for a while (to observe that nothing more arrives)."""
        pump(self.conn, seconds)
        return self.messages

    def cancel(self):
        self.ch.basic_cancel(self.tag)


def get_all(ch, queue, auto_ack=True, limit=100000):
    """basic.get until get-empty; returns the bodies."""
    out = []
    for _ in range(limit):
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return out
        out.append(body)
    raise AssertionError("queue %s did not become empty" % queue)


def get_one(ch, queue, auto_ack=False, timeout=5.0):
    """basic.get, retrying until a message is there (routing may be async)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            if callable(message):
                message = message()
            raise AssertionError("no message in %s within %.1fs" % (queue, timeout))
        time.sleep(0.02)


def queue_state(conn, queue):
    """(message_count, consumer_count) via a passive declare on a fresh
    channel, or None when the queue does not exist (404)."""
    c = conn.channel()
    try:
        ok = c.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code == 404:
            return None
        raise
    c.close()
    return ok.method.message_count, ok.method.consumer_count


def queue_exists(conn, queue):
    return queue_state(conn, queue) is not None


def message_count(conn, queue):
    st = queue_state(conn, queue)
    assert st is not None, "queue %s does not exist" % queue
    return st[0]


def exchange_exists(conn, exchange):
    c = conn.channel()
    try:
        c.exchange_declare(exchange, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code == 404:
            return False
        raise
    c.close()
    return True


@contextlib.contextmanager
def channel_error(code):
    """Expect the block to end with the broker closing the channel with
    ``code``."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        yield ei
    assert ei.value.reply_code == code, \
        "expected channel.close %d, got %d %s" % (code, ei.value.reply_code, ei.value.reply_text)


def sync_point(ch):
    """A synchronous round trip on ``ch`` so that an asynchronous channel
    error caused by an earlier publish/ack is raised here."""
    ch.basic_qos(prefetch_count=0)


def connection_error_code(exc):
    """The reply code in a pika connection exception (direct or wrapped in
    pika's Probable*Error heuristics), or None."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        code = getattr(e, "reply_code", None)
        if isinstance(code, int):
            return code
        for a in getattr(e, "args", ()):
            if isinstance(a, BaseException):
                stack.append(a)
        for a in (e.__cause__, e.__context__):
            if a is not None:
                stack.append(a)
    m = re.search(r"\((\d{3})\)", repr(exc))
    return int(m.group(1)) if m else None


def header_str(v):
    """pika decodes longstr headers as str when they are UTF-8, bytes otherwise."""
    return v.decode() if isinstance(v, bytes) else v


def raise_nofile_limit(wanted):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def env_flag(name):
    return os.environ.get(name, "") not in ("", "0", "no", "false")


# ---------------------------------------------------------------------------
# child processes
# ---------------------------------------------------------------------------

def _die_with_parent():
    """preexec_fn: SIGKILL the child if the test process dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def popen(cmd, **kw):
    """subprocess.Popen that is killed when the test process dies and is
    SIGKILLed at interpreter exit if still running."""
    kw.setdefault("preexec_fn", _die_with_parent)
    p = subprocess.Popen(cmd, **kw)
    _live_processes.append(p)
    return p


def kill_process(p, timeout=5.0):
    if p.poll() is None:
        try:
            p.kill()
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


@atexit.register
def _kill_leftovers():
    for p in _live_processes:
        kill_process(p, 1.0)
