"""A deliberately small AMQP 0-9-1 client on a plain socket.

It exists so the integration tests can send frames that no well-behaved
client library would send (oversized frames, bad frame-end octets, truncated
methods, broken field tables, unknown methods, frames on closed channels) and
read the broker's answer octet by octet.

Everything is built by hand with ``struct``; nothing here depends on pika.
Run ``python3 raw_amqp.py`` to self-test the encoders and decoders.
"""

import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

# (class_id, method_id) of the methods the tests use.
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_SECURE = (10, 20)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
EXCHANGE_DECLARE = (40, 10)
EXCHANGE_DECLARE_OK = (40, 11)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
QUEUE_DELETE = (50, 40)
QUEUE_DELETE_OK = (50, 41)
BASIC_QOS = (60, 10)
BASIC_PUBLISH = (60, 40)
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
BASIC_GET_EMPTY = (60, 72)
BASIC_ACK = (60, 80)

# Reply codes (AMQP 0-9-1 section 1.1 "constants").
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541


# --------------------------------------------------------------------------
# Primitive encoders
# --------------------------------------------------------------------------

def _b(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def octet(v):
    return struct.pack(">B", v)


def short(v):
    return struct.pack(">H", v)


def long_(v):
    return struct.pack(">I", v)


def longlong(v):
    return struct.pack(">Q", v)


def shortstr(s):
    data = _b(s)
    if len(data) > 255:
        raise ValueError("shortstr longer than 255 octets")
    return struct.pack(">B", len(data)) + data


def longstr(s):
    data = _b(s)
    return struct.pack(">I", len(data)) + data


def bits(*flags):
    """Pack consecutive bit arguments into octets, least significant first."""
    out = b""
    for i in range(0, len(flags), 8):
        v = 0
        for j, f in enumerate(flags[i:i + 8]):
            if f:
                v |= 1 << j
        out += struct.pack(">B", v)
    return out or b"\x00"


def field_value(v):
    """Encode one field-table value with the type tags RabbitMQ uses."""
    if isinstance(v, bool):
        return b"t" + struct.pack(">B", 1 if v else 0)
    if isinstance(v, int):
        if -2 ** 31 <= v < 2 ** 31:
            return b"I" + struct.pack(">i", v)
        return b"l" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, (list, tuple)):
        body = b"".join(field_value(x) for x in v)
        return b"A" + struct.pack(">I", len(body)) + body
    if v is None:
        return b"V"
    raise TypeError("cannot encode %r in a field table" % (v,))


def table(d):
    body = b"".join(shortstr(k) + field_value(v) for k, v in (d or {}).items())
    return struct.pack(">I", len(body)) + body


# --------------------------------------------------------------------------
# Primitive decoders
# --------------------------------------------------------------------------

class Reader:
    """Cursor over a bytes object; raises ValueError when it runs short."""

    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("need %d octets at %d, have %d"
                             % (n, self.pos, len(self.data) - self.pos))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def octet(self):
        return self.unpack(">B")[0]

    def short(self):
        return self.unpack(">H")[0]

    def long(self):
        return self.unpack(">I")[0]

    def longlong(self):
        return self.unpack(">Q")[0]

    def shortstr(self):
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.long())

    def table(self):
        sub = Reader(self.take(self.long()))
        out = {}
        while sub.pos < len(sub.data):
            key = sub.shortstr()
            out[key] = sub.field_value()
        return out

    def array(self):
        sub = Reader(self.take(self.long()))
        out = []
        while sub.pos < len(sub.data):
            out.append(sub.field_value())
        return out

    def field_value(self):
        tag = self.take(1)
        if tag == b"t":
            return self.octet() != 0
        if tag == b"b":
            return self.unpack(">b")[0]
        if tag == b"B":
            return self.unpack(">B")[0]
        if tag == b"s":
            return self.unpack(">h")[0]
        if tag == b"u":
            return self.unpack(">H")[0]
        if tag == b"I":
            return self.unpack(">i")[0]
        if tag == b"i":
            return self.unpack(">I")[0]
        if tag == b"l":
            return self.unpack(">q")[0]
        if tag == b"f":
            return self.unpack(">f")[0]
        if tag == b"d":
            return self.unpack(">d")[0]
        if tag == b"D":
            scale = self.octet()
            value = self.unpack(">i")[0]
            return (scale, value)
        if tag == b"S":
            return self.longstr()
        if tag == b"x":
            return self.longstr()
        if tag == b"A":
            return self.array()
        if tag == b"T":
            return self.longlong()
        if tag == b"F":
            return self.table()
        if tag == b"V":
            return None
        raise ValueError("unknown field type %r" % tag)


# --------------------------------------------------------------------------
# Frames and methods
# --------------------------------------------------------------------------

def frame(ftype, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method_payload(cm, args=b""):
    return struct.pack(">HH", cm[0], cm[1]) + args


def method_frame(channel, cm, args=b"", end=FRAME_END):
    return frame(FRAME_METHOD, channel, method_payload(cm, args), end)


def content_header_frame(channel, body_size, class_id=60, properties=None):
    """A content header with only delivery-mode/content-type style properties.

    ``properties`` is a dict that may hold ``content_type`` (shortstr),
    ``headers`` (table) and ``delivery_mode`` (octet); others are ignored.
    """
    properties = properties or {}
    flags = 0
    props = b""
    if "content_type" in properties:
        flags |= 1 << 15
        props += shortstr(properties["content_type"])
    if "headers" in properties:
        flags |= 1 << 13
        props += table(properties["headers"])
    if "delivery_mode" in properties:
        flags |= 1 << 12
        props += octet(properties["delivery_mode"])
    payload = struct.pack(">HHQH", class_id, 0, body_size, flags) + props
    return frame(FRAME_HEADER, channel, payload)


def body_frame(channel, data):
    return frame(FRAME_BODY, channel, _b(data))


def heartbeat_frame():
    return frame(FRAME_HEARTBEAT, 0, b"")


def plain_response(user, password):
    return b"\x00" + _b(user) + b"\x00" + _b(password)


def start_ok_args(user="guest", password="guest", mechanism="PLAIN",
                  client_properties=None, locale="en_US"):
    props = {"product": "flotilla-raw-test",
             "capabilities": {"consumer_cancel_notify": True,
                              "authentication_failure_close": True,
                              "connection.blocked": True}}
    if client_properties:
        props.update(client_properties)
    return (table(props) + shortstr(mechanism)
            + longstr(plain_response(user, password)) + shortstr(locale))


def tune_ok_args(channel_max, frame_max, heartbeat):
    return short(channel_max) + long_(frame_max) + short(heartbeat)


def open_args(vhost="/"):
    return shortstr(vhost) + shortstr("") + bits(False)


def close_args(code=REPLY_SUCCESS, text="bye", cm=(0, 0)):
    return short(code) + shortstr(text) + short(cm[0]) + short(cm[1])


def channel_open_args():
    return shortstr("")


def queue_declare_args(queue="", passive=False, durable=False, exclusive=False,
                       auto_delete=False, nowait=False, arguments=None):
    return (short(0) + shortstr(queue)
            + bits(passive, durable, exclusive, auto_delete, nowait)
            + table(arguments))


def queue_delete_args(queue, if_unused=False, if_empty=False, nowait=False):
    return short(0) + shortstr(queue) + bits(if_unused, if_empty, nowait)


def basic_publish_args(exchange="", routing_key="", mandatory=False, immediate=False):
    return short(0) + shortstr(exchange) + shortstr(routing_key) + bits(mandatory, immediate)


def basic_get_args(queue, no_ack=True):
    return short(0) + shortstr(queue) + bits(no_ack)


class Frame:
    def __init__(self, ftype, channel, payload):
        self.type = ftype
        self.channel = channel
        self.payload = payload
        self.method = None
        self.args = None
        if ftype == FRAME_METHOD and len(payload) >= 4:
            self.method = struct.unpack(">HH", payload[:4])
            self.args = payload[4:]

    def __repr__(self):
        if self.method:
            return "<Frame method %s ch=%d %d octets>" % (self.method, self.channel, len(self.payload))
        return "<Frame type=%d ch=%d %d octets>" % (self.type, self.channel, len(self.payload))


def parse_frame(buf):
    """Parse one frame from the front of ``buf``.

    Returns ``(Frame, rest)`` or ``(None, buf)`` when ``buf`` holds less than a
    whole frame. Raises ValueError on a bad frame-end octet.
    """
    if len(buf) < 7:
        return None, buf
    ftype, channel, size = struct.unpack(">BHI", buf[:7])
    if len(buf) < 7 + size + 1:
        return None, buf
    payload = buf[7:7 + size]
    if buf[7 + size] != FRAME_END:
        raise ValueError("bad frame end 0x%02x" % buf[7 + size])
    return Frame(ftype, channel, payload), buf[7 + size + 1:]


def decode_start(args):
    r = Reader(args)
    major, minor = r.octet(), r.octet()
    props = r.table()
    mechanisms = r.longstr().decode()
    locales = r.longstr().decode()
    return {"version_major": major, "version_minor": minor,
            "server_properties": props, "mechanisms": mechanisms.split(),
            "locales": locales.split()}


def decode_tune(args):
    r = Reader(args)
    return {"channel_max": r.short(), "frame_max": r.long(), "heartbeat": r.short()}


def decode_close(args):
    """connection.close and channel.close share the same argument layout."""
    r = Reader(args)
    code = r.short()
    text = r.shortstr()
    return {"reply_code": code, "reply_text": text,
            "class_id": r.short(), "method_id": r.short()}


def decode_queue_declare_ok(args):
    r = Reader(args)
    return {"queue": r.shortstr(), "message_count": r.long(), "consumer_count": r.long()}


# --------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------

class ConnectionClosedError(Exception):
    """The peer closed the TCP connection while we were waiting for a frame."""


class ServerClosed(Exception):
    """The broker sent connection.close while we expected something else."""

    def __init__(self, info):
        super().__init__("connection.close %(reply_code)d %(reply_text)s "
                         "(class %(class_id)d method %(method_id)d)" % info)
        self.info = info
        self.reply_code = info["reply_code"]


class RawConnection:
    """One TCP connection speaking AMQP by hand."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.tune = None
        self.start = None
        self.frame_max = 0
        self.heartbeat = 0

    # -- plumbing ---------------------------------------------------------
    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_socket()

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        self.sock.sendall(data)

    def send_method(self, channel, cm, args=b""):
        self.send(method_frame(channel, cm, args))

    def recv_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for data from the broker")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise ConnectionClosedError("broker closed the TCP connection")
        self.buf += data

    def read_raw(self, n, timeout=None):
        """Read exactly n raw octets (used for the protocol-header reply)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self.recv_some(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_eof(self, timeout=None):
        """Read everything until the broker closes the socket; returns it all."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self.recv_some(deadline)
            except ConnectionClosedError:
                out, self.buf = self.buf, b""
                return out

    def read_frame(self, timeout=None, skip_heartbeats=True):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f, self.buf = parse_frame(self.buf)
            if f is not None:
                if skip_heartbeats and f.type == FRAME_HEARTBEAT:
                    continue
                return f
            self.recv_some(deadline)

    def expect_method(self, channel, cm, timeout=None):
        f = self.read_frame(timeout)
        if f.method == CONNECTION_CLOSE and cm != CONNECTION_CLOSE:
            raise ServerClosed(decode_close(f.args))
        if f.method != cm or f.channel != channel:
            raise AssertionError("expected method %s on channel %d, got %r"
                                 % (cm, channel, f))
        return f

    # -- protocol steps -----------------------------------------------------
    def handshake(self, user="guest", password="guest", vhost="/",
                  heartbeat=0, frame_max=131072, channel_max=2047):
        """Protocol header, start-ok (PLAIN), tune-ok, open. Returns tune-ok values."""
        self.send(PROTOCOL_HEADER)
        f = self.expect_method(0, CONNECTION_START)
        self.start = decode_start(f.args)
        self.send_method(0, CONNECTION_START_OK, start_ok_args(user, password))
        f = self.expect_method(0, CONNECTION_TUNE)
        self.tune = decode_tune(f.args)
        self.frame_max = negotiate(frame_max, self.tune["frame_max"])
        self.channel_max = negotiate(channel_max, self.tune["channel_max"])
        self.heartbeat = heartbeat
        self.send_method(0, CONNECTION_TUNE_OK,
                         tune_ok_args(self.channel_max, self.frame_max, self.heartbeat))
        self.send_method(0, CONNECTION_OPEN, open_args(vhost))
        self.expect_method(0, CONNECTION_OPEN_OK)
        return {"frame_max": self.frame_max, "channel_max": self.channel_max,
                "heartbeat": self.heartbeat}

    def open_channel(self, channel):
        self.send_method(channel, CHANNEL_OPEN, channel_open_args())
        self.expect_method(channel, CHANNEL_OPEN_OK)

    def declare_queue(self, channel, queue="", **kw):
        self.send_method(channel, QUEUE_DECLARE, queue_declare_args(queue, **kw))
        f = self.expect_method(channel, QUEUE_DECLARE_OK)
        return decode_queue_declare_ok(f.args)

    def wait_connection_close(self, timeout=None, reply_close_ok=True):
        """Wait for connection.close from the broker, skipping anything else
        (heartbeats, deliveries). Answers close-ok. Returns the decoded close."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self.read_frame(max(0.001, deadline - time.monotonic()))
            if f.method == CONNECTION_CLOSE:
                info = decode_close(f.args)
                if reply_close_ok:
                    try:
                        self.send_method(0, CONNECTION_CLOSE_OK)
                    except OSError:
                        pass
                return info

    def close(self, timeout=None):
        """Polite close: connection.close, wait for close-ok, close the socket."""
        try:
            self.send_method(0, CONNECTION_CLOSE, close_args())
            deadline = time.monotonic() + (timeout or self.timeout)
            while True:
                f = self.read_frame(max(0.001, deadline - time.monotonic()))
                if f.method == CONNECTION_CLOSE_OK:
                    break
        finally:
            self.close_socket()


def negotiate(client, server):
    """AMQP limit negotiation where 0 means 'no limit'."""
    if client == 0:
        return server
    if server == 0:
        return client
    return min(client, server)


# --------------------------------------------------------------------------
# Self-test of the encoders/decoders (no broker needed)
# --------------------------------------------------------------------------

def _selftest():
    # frame layout
    f = frame(FRAME_METHOD, 3, b"abc")
    assert f == b"\x01\x00\x03\x00\x00\x00\x03abc\xce", f
    parsed, rest = parse_frame(f + b"xyz")
    assert parsed.type == 1 and parsed.channel == 3 and parsed.payload == b"abc"
    assert rest == b"xyz"
    assert parse_frame(f[:-1]) == (None, f[:-1])
    try:
        parse_frame(f[:-1] + b"\x00")
        raise AssertionError("bad frame end accepted")
    except ValueError:
        pass
    # heartbeat frame is exactly 8 octets
    assert heartbeat_frame() == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    # method frame
    m = method_frame(0, CONNECTION_TUNE_OK, tune_ok_args(2047, 131072, 60))
    parsed, _ = parse_frame(m)
    assert parsed.method == (10, 31)
    assert decode_tune(parsed.args) == {"channel_max": 2047, "frame_max": 131072, "heartbeat": 60}
    # bits
    assert bits(True, False, True) == b"\x05"
    assert bits(False, False, False, False, False, False, False, False, True) == b"\x00\x01"
    # strings
    assert shortstr("ab") == b"\x02ab"
    assert longstr(b"ab") == b"\x00\x00\x00\x02ab"
    # tables round trip
    t = {"a": 1, "b": "x", "c": True, "d": {"e": -5}, "f": [1, "y"], "g": 2 ** 40,
         "h": 1.5, "i": None}
    decoded = Reader(table(t)).table()
    assert decoded == {"a": 1, "b": b"x", "c": True, "d": {"e": -5}, "f": [1, b"y"],
                       "g": 2 ** 40, "h": 1.5, "i": None}, decoded
    # start-ok contains PLAIN response \0guest\0guest
    so = start_ok_args()
    r = Reader(so)
    props = r.table()
    assert props["product"] == b"flotilla-raw-test"
    assert r.shortstr() == "PLAIN"
    assert r.longstr() == b"\x00guest\x00guest"
    assert r.shortstr() == "en_US"
    # close decode
    info = decode_close(close_args(404, "NOT_FOUND - x", (50, 10)))
    assert info == {"reply_code": 404, "reply_text": "NOT_FOUND - x", "class_id": 50,
                    "method_id": 10}
    # queue.declare args layout: ticket, name, bits, table
    qd = queue_declare_args("q", durable=True, auto_delete=True, arguments={"x-max-length": 3})
    r = Reader(qd)
    assert r.short() == 0 and r.shortstr() == "q" and r.octet() == 0b1010
    assert r.table() == {"x-max-length": 3}
    # content header: class 60, weight 0, size, flags
    h = content_header_frame(1, 5, properties={"delivery_mode": 2})
    parsed, _ = parse_frame(h)
    assert parsed.type == FRAME_HEADER
    assert struct.unpack(">HHQH", parsed.payload[:14]) == (60, 0, 5, 1 << 12)
    assert parsed.payload[14:] == b"\x02"
    # negotiate
    assert negotiate(0, 10) == 10 and negotiate(5, 0) == 5 and negotiate(5, 10) == 5
    print("raw_amqp self-test ok")


if __name__ == "__main__":
    _selftest()
