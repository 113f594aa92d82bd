"""Malformed and out-of-order frames from a hand-written client (raw_amqp).

Each case does a normal handshake (frame_max 4096) and opens channel 1, then
sends something broken and expects connection.close (or channel.close) with
the reply code RabbitMQ uses, answers close-ok, and expects the broker to
close the socket. After every case a second, well-behaved connection must
still work, so a bad client cannot take the broker down.
"""

import struct

import pika
import pytest

import raw_amqp as r
from helpers import get_one

HOST = "127.0.0.1"
FRAME_MAX = 4096

# The broker may log the client's protocol errors as errors; any such line
# must at least name the reply code or its constant.
pytestmark = pytest.mark.allow_errors(
    r"50[1-6]|530|54[01]|FRAME_ERROR|SYNTAX_ERROR|COMMAND_INVALID|CHANNEL_ERROR|"
    r"UNEXPECTED_FRAME|NOT_ALLOWED|NOT_IMPLEMENTED|PRECONDITION_FAILED|406")


def open_client(broker):
    c = r.RawConnection(HOST, broker.port)
    c.handshake(frame_max=FRAME_MAX)
    assert c.frame_max == FRAME_MAX
    c.open_channel(1)
    return c


def assert_broker_healthy(broker):
    """A new raw connection and a pika connection both work."""
    with r.RawConnection(HOST, broker.port) as c:
        c.handshake()
        c.open_channel(1)
        ok = c.declare_queue(1, "", exclusive=True)
        assert ok["queue"].startswith("amq.gen-")
        c.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", ok["queue"]))
        c.send(r.content_header_frame(1, 5))
        c.send(r.body_frame(1, b"hello"))
        deadline = 50
        while True:
            c.send_method(1, r.BASIC_GET, r.basic_get_args(ok["queue"], no_ack=True))
            f = c.read_frame()
            if f.method == r.BASIC_GET_OK:
                header = c.read_frame()
                body = c.read_frame()
                assert header.type == r.FRAME_HEADER
                assert body.payload == b"hello"
                break
            assert f.method == r.BASIC_GET_EMPTY, f
            deadline -= 1
            assert deadline > 0, "published message never arrived"
        c.close()
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        HOST, broker.port, credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, heartbeat=0))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"pika-ok")
        assert get_one(ch, q, auto_ack=True)[2] == b"pika-ok"
    finally:
        conn.close()


def expect_connection_close(c, codes, timeout=10):
    """Skip other frames until connection.close; answer close-ok; the broker
    must then close the socket. Returns the decoded close."""
    info = c.wait_connection_close(timeout=timeout)
    assert info["reply_code"] in codes, "expected connection.close %s, got %r" % (codes, info)
    rest = c.read_until_eof(timeout=timeout)
    # nothing but (possibly) heartbeats may follow close-ok
    while rest:
        f, rest = r.parse_frame(rest)
        assert f is not None and f.type == r.FRAME_HEARTBEAT, f
    return info


def expect_channel_close(c, channel, codes, timeout=10):
    while True:
        f = c.read_frame(timeout)
        if f.method == r.CONNECTION_CLOSE:
            raise AssertionError("expected channel.close %s on channel %d, got "
                                 "connection.close %r" % (codes, channel, r.decode_close(f.args)))
        if f.method == r.CHANNEL_CLOSE and f.channel == channel:
            info = r.decode_close(f.args)
            assert info["reply_code"] in codes, "expected channel.close %s, got %r" % (codes, info)
            c.send_method(channel, r.CHANNEL_CLOSE_OK)
            return info


@pytest.fixture
def client(shared_broker):
    c = open_client(shared_broker)
    yield c
    c.close_socket()
    assert_broker_healthy(shared_broker)


def queue_declare_frame(channel=1, name="q", arguments=None):
    return r.method_frame(channel, r.QUEUE_DECLARE,
                          r.queue_declare_args(name, exclusive=True, arguments=arguments))


# ---------------------------------------------------------------------------
# framing errors: 501 FRAME_ERROR
# ---------------------------------------------------------------------------

def test_oversized_method_frame(client):
    big = {"x-padding": "p" * (2 * FRAME_MAX)}
    client.send(queue_declare_frame(arguments=big))
    expect_connection_close(client, {r.FRAME_ERROR})


def test_oversized_body_frame(client):
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", "q"))
    size = 2 * FRAME_MAX
    client.send(r.content_header_frame(1, size))
    client.send(r.body_frame(1, b"b" * size))
    expect_connection_close(client, {r.FRAME_ERROR})


def test_frame_exactly_frame_max_is_accepted(client):
    # 7 octets of header + payload + 1 frame-end == frame_max: allowed.
    q = client.declare_queue(1, "", exclusive=True)["queue"]
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", q))
    payload = FRAME_MAX - 8
    client.send(r.content_header_frame(1, payload))
    client.send(r.body_frame(1, b"z" * payload))
    client.send_method(1, r.BASIC_GET, r.basic_get_args(q))
    for _ in range(50):
        f = client.read_frame()
        if f.method == r.BASIC_GET_OK:
            break
        assert f.method == r.BASIC_GET_EMPTY, f
        client.send_method(1, r.BASIC_GET, r.basic_get_args(q))
    else:
        raise AssertionError("message never arrived")
    client.read_frame()  # header
    body = client.read_frame()
    assert body.payload == b"z" * payload
    client.close()


def test_bad_frame_end(client):
    client.send(r.method_frame(2, r.CHANNEL_OPEN, r.channel_open_args(), end=0x00))
    expect_connection_close(client, {r.FRAME_ERROR})


def test_bad_frame_end_on_body(client):
    q = client.declare_queue(1, "", exclusive=True)["queue"]
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", q))
    client.send(r.content_header_frame(1, 3))
    client.send(r.frame(r.FRAME_BODY, 1, b"abc", end=0xCD))
    expect_connection_close(client, {r.FRAME_ERROR})


def test_unknown_frame_type(client):
    client.send(r.frame(5, 1, b"\x00\x00"))
    expect_connection_close(client, {r.FRAME_ERROR})


def test_heartbeat_on_nonzero_channel(client):
    # The spec asks for 501; RabbitMQ answers 505 UNEXPECTED_FRAME.
    client.send(r.frame(r.FRAME_HEARTBEAT, 1, b""))
    expect_connection_close(client, {r.FRAME_ERROR, r.UNEXPECTED_FRAME})


def test_garbage_after_handshake(client):
    client.send(b"\xff" * 64)
    expect_connection_close(client, {r.FRAME_ERROR})


# ---------------------------------------------------------------------------
# decoding errors
# ---------------------------------------------------------------------------

def test_truncated_method_arguments(client):
    # queue.declare with only the reserved short and half a queue name
    client.send(r.frame(r.FRAME_METHOD, 1, struct.pack(">HHH", 50, 10, 0) + b"\x05ab"))
    expect_connection_close(client, {r.FRAME_ERROR, r.SYNTAX_ERROR})


def test_method_frame_shorter_than_ids(client):
    client.send(r.frame(r.FRAME_METHOD, 1, b"\x00\x32"))
    expect_connection_close(client, {r.FRAME_ERROR, r.SYNTAX_ERROR})


# RabbitMQ 3.10 drops the TCP connection without a connection.close on a
# malformed field table or an unknown class/method (its connection process
# crashes); a drop-in broker should answer rather than crash. For field
# tables the spec allows 501 (a frame that cannot be decoded) or 502
# (illegal field values); Flotilla answers 501 for every undecodable method
# payload (docs/amqp-0-9-1.md). Unknown methods: 540 (503 also accepted).

def test_bad_field_table_unknown_type(client):
    bad = struct.pack(">I", 4) + b"\x01kZ\x00"  # key "k", type 'Z' does not exist
    args = struct.pack(">H", 0) + r.shortstr("q-bad") + r.bits(False, False, True) + bad
    client.send(r.method_frame(1, r.QUEUE_DECLARE, args))
    expect_connection_close(client, {r.FRAME_ERROR, r.SYNTAX_ERROR})


def test_bad_field_table_length_overruns(client):
    # the table claims 100 octets but the frame ends after 3
    args = (struct.pack(">H", 0) + r.shortstr("q-bad") + r.bits(False, False, True)
            + struct.pack(">I", 100) + b"\x01k")
    client.send(r.method_frame(1, r.QUEUE_DECLARE, args))
    expect_connection_close(client, {r.FRAME_ERROR, r.SYNTAX_ERROR})


def test_bad_field_table_truncated_value(client):
    # a long-int value 'I' with only two of its four octets
    table = b"\x01kI\x00\x01"
    args = (struct.pack(">H", 0) + r.shortstr("q-bad") + r.bits(False, False, True)
            + struct.pack(">I", len(table)) + table)
    client.send(r.method_frame(1, r.QUEUE_DECLARE, args))
    expect_connection_close(client, {r.FRAME_ERROR, r.SYNTAX_ERROR})


def test_unknown_class(client):
    client.send(r.method_frame(1, (9999, 1), b""))
    expect_connection_close(client, {r.NOT_IMPLEMENTED, r.COMMAND_INVALID})


def test_unknown_method_of_known_class(client):
    client.send(r.method_frame(1, (50, 99), b""))
    expect_connection_close(client, {r.NOT_IMPLEMENTED, r.COMMAND_INVALID})


# ---------------------------------------------------------------------------
# channel state errors
# ---------------------------------------------------------------------------

def test_method_on_unopened_channel(client):
    client.send(queue_declare_frame(channel=7))
    expect_connection_close(client, {r.CHANNEL_ERROR})


def test_channel_open_twice(client):
    client.send_method(1, r.CHANNEL_OPEN, r.channel_open_args())
    expect_connection_close(client, {r.CHANNEL_ERROR})


def test_method_after_channel_close(client):
    client.send_method(1, r.CHANNEL_CLOSE, r.close_args())
    client.expect_method(1, r.CHANNEL_CLOSE_OK)
    client.send(queue_declare_frame(channel=1))
    expect_connection_close(client, {r.CHANNEL_ERROR})


def test_channel_method_on_channel_zero(client):
    client.send(queue_declare_frame(channel=0))
    expect_connection_close(client, {r.COMMAND_INVALID, r.CHANNEL_ERROR})


def test_more_channels_than_channel_max(shared_broker):
    # RabbitMQ counts open channels against the negotiated channel_max and
    # refuses the one too many with 530 NOT_ALLOWED.
    c = r.RawConnection(HOST, shared_broker.port)
    try:
        c.handshake(channel_max=10)
        assert c.channel_max == 10
        for ch in range(1, 11):
            c.open_channel(ch)
        c.send_method(11, r.CHANNEL_OPEN, r.channel_open_args())
        expect_connection_close(c, {r.NOT_ALLOWED})
    finally:
        c.close_socket()
    assert_broker_healthy(shared_broker)


# ---------------------------------------------------------------------------
# content errors: 505 UNEXPECTED_FRAME
# ---------------------------------------------------------------------------

def test_content_header_without_publish(client):
    client.send(r.content_header_frame(1, 3))
    expect_connection_close(client, {r.UNEXPECTED_FRAME})


def test_content_body_without_publish(client):
    client.send(r.body_frame(1, b"abc"))
    expect_connection_close(client, {r.UNEXPECTED_FRAME})


def test_method_instead_of_content_header(client):
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", "q"))
    client.send(queue_declare_frame(channel=1))
    expect_connection_close(client, {r.UNEXPECTED_FRAME})


def test_method_instead_of_content_body(client):
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", "q"))
    client.send(r.content_header_frame(1, 10))
    client.send(r.body_frame(1, b"12345"))
    client.send(queue_declare_frame(channel=1))
    expect_connection_close(client, {r.UNEXPECTED_FRAME})


def test_body_longer_than_declared(client):
    # RabbitMQ 3.10 silently waits here; the body overrunning the size in the
    # content header is a framing error for a strict broker.
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", "q"))
    client.send(r.content_header_frame(1, 3))
    client.send(r.body_frame(1, b"too long"))
    expect_connection_close(client, {r.FRAME_ERROR, r.UNEXPECTED_FRAME})


def test_content_header_wrong_class(client):
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", "q"))
    client.send(r.content_header_frame(1, 3, class_id=50))
    expect_connection_close(client, {r.FRAME_ERROR, r.UNEXPECTED_FRAME})


def test_interleaved_content_on_other_channel_is_fine(client):
    """Content for channel 1 may be interleaved with frames of channel 2."""
    client.open_channel(2)
    q = client.declare_queue(2, "", exclusive=True)["queue"]
    client.send_method(1, r.BASIC_PUBLISH, r.basic_publish_args("", q))
    client.send(r.content_header_frame(1, 4))
    client.send_method(2, r.BASIC_QOS, struct.pack(">IHB", 0, 5, 0))
    client.expect_method(2, (60, 11))
    client.send(r.body_frame(1, b"ok!!"))
    for _ in range(50):
        client.send_method(2, r.BASIC_GET, r.basic_get_args(q))
        f = client.read_frame()
        if f.method == r.BASIC_GET_OK:
            client.read_frame()
            assert client.read_frame().payload == b"ok!!"
            break
    else:
        raise AssertionError("message never arrived")
    client.close()


# ---------------------------------------------------------------------------
# other connection-level errors
# ---------------------------------------------------------------------------

def test_duplicate_consumer_tag_on_channel(client):
    q = client.declare_queue(1, "", exclusive=True)["queue"]
    consume = (struct.pack(">H", 0) + r.shortstr(q) + r.shortstr("dup")
               + r.bits(False, False, False, False) + r.table({}))
    client.send_method(1, (60, 20), consume)
    client.expect_method(1, (60, 21))
    client.send_method(1, (60, 20), consume)
    expect_connection_close(client, {r.NOT_ALLOWED})


def test_connection_close_ok_handshake_by_client(client):
    # the client closes; the broker answers close-ok and drops the socket
    client.send_method(0, r.CONNECTION_CLOSE, r.close_args(200, "done"))
    f = client.read_frame()
    assert f.method == r.CONNECTION_CLOSE_OK
    # the client, having received close-ok, is the one that closes the socket


def test_frames_before_connection_open_ignored_or_refused(shared_broker):
    """A channel.open before connection.open is a protocol violation; the
    broker must not open the channel."""
    c = r.RawConnection(HOST, shared_broker.port)
    try:
        c.send(r.PROTOCOL_HEADER)
        c.expect_method(0, r.CONNECTION_START)
        c.send_method(1, r.CHANNEL_OPEN, r.channel_open_args())
        got_open_ok = False
        try:
            while True:
                f = c.read_frame(timeout=10)
                if f.method == r.CHANNEL_OPEN_OK:
                    got_open_ok = True
                if f.method == r.CONNECTION_CLOSE:
                    c.send_method(0, r.CONNECTION_CLOSE_OK)
        except (r.ConnectionClosedError, OSError):
            pass
        assert not got_open_ok
    finally:
        c.close_socket()
    assert_broker_healthy(shared_broker)
