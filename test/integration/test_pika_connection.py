"""Connection-level behaviour: heartbeats, negotiation, authentication,
vhosts, scale (channels, queues, connections, large messages) and shutdown."""

import os
import socket
import threading
import time

import pika
import pika.exceptions
import pytest

import raw_amqp
from helpers import (Consumer, channel_error, connection_error_code, get_one, pump,
                     queue_exists, raise_nofile_limit, uniq)

HOST = "127.0.0.1"


# ---------------------------------------------------------------------------
# heartbeats
# ---------------------------------------------------------------------------

@pytest.mark.slow
def test_heartbeat_negotiated_and_idle_connection_survives(shared_broker, connect):
    conn = connect(shared_broker, heartbeat=2)
    assert conn._impl.params.heartbeat == 2
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    # pika sends heartbeats while sleeping, and closes the connection itself
    # if the broker sends nothing for too long.
    conn.sleep(6)
    assert conn.is_open
    ch.basic_publish("", q, b"still-alive")
    assert get_one(ch, q, auto_ack=True)[2] == b"still-alive"


@pytest.mark.broker_args("--heartbeat", "3")
def test_server_heartbeat_proposal_accepted(broker, connect):
    conn = connect(broker, heartbeat=None)  # None: take the broker's proposal
    assert conn._impl.params.heartbeat == 3


@pytest.mark.slow
def test_silent_client_is_disconnected(shared_broker):
    """A client that negotiated heartbeat=1 and then sends nothing is
    disconnected after about two missed heartbeats, while a client that keeps
    sending heartbeats stays connected."""
    silent = raw_amqp.RawConnection(HOST, shared_broker.port)
    lively = raw_amqp.RawConnection(HOST, shared_broker.port)
    try:
        silent.handshake(heartbeat=1)
        lively.handshake(heartbeat=1)
        silent.sock.setblocking(False)
        closed_at = None
        start = time.monotonic()
        beats_seen = 0
        while time.monotonic() - start < 20:
            lively.send(raw_amqp.heartbeat_frame())
            # drain the lively connection's socket (heartbeats from the broker)
            try:
                lively.sock.settimeout(0.01)
                data = lively.sock.recv(65536)
                lively.buf += data
            except socket.timeout:
                pass
            # read the silent one without ever writing to it
            try:
                data = silent.sock.recv(65536)
                if data == b"":
                    closed_at = time.monotonic()
                    break
                silent.buf += data
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic()
                break
            time.sleep(0.25)
        assert closed_at is not None, "broker kept a silent heartbeat=1 connection for 20 s"
        # the broker sent heartbeats to the silent client before giving up
        while True:
            f, silent.buf = raw_amqp.parse_frame(silent.buf)
            if f is None:
                break
            if f.type == raw_amqp.FRAME_HEARTBEAT:
                beats_seen += 1
        assert beats_seen >= 1, "broker sent no heartbeat frames on a heartbeat=1 connection"
        # the lively connection is still usable
        lively.open_channel(1)
        lively.declare_queue(1, "", exclusive=True)
        lively.close()
    finally:
        silent.close_socket()
        lively.close_socket()


# ---------------------------------------------------------------------------
# protocol header, authentication, vhosts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"AMQP\x00\x01\x00\x00",   # AMQP 1.0
    b"AMQP\x00\x00\x0a\x00",   # not a version we speak
])
def test_wrong_protocol_header(shared_broker, header):
    with raw_amqp.RawConnection(HOST, shared_broker.port) as c:
        c.send(header)
        reply = c.read_until_eof(timeout=10)
    assert reply == raw_amqp.PROTOCOL_HEADER


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED|auth|login|credential|guest|nobody")
@pytest.mark.parametrize("user,password", [("guest", "wrong"), ("nobody", "guest")])
def test_bad_credentials_pika(shared_broker, user, password):
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)) as ei:
        pika.BlockingConnection(pika.ConnectionParameters(
            HOST, shared_broker.port, credentials=pika.PlainCredentials(user, password),
            connection_attempts=1, socket_timeout=10))
    assert connection_error_code(ei.value) == 403, repr(ei.value)
    assert "ACCESS_REFUSED" in repr(ei.value)


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED|auth|login|credential|guest")
def test_bad_credentials_raw(shared_broker):
    with raw_amqp.RawConnection(HOST, shared_broker.port) as c:
        c.send(raw_amqp.PROTOCOL_HEADER)
        c.expect_method(0, raw_amqp.CONNECTION_START)
        c.send_method(0, raw_amqp.CONNECTION_START_OK, raw_amqp.start_ok_args("guest", "bad"))
        info = c.wait_connection_close(timeout=10)
        assert info["reply_code"] == raw_amqp.ACCESS_REFUSED, info
        assert info["reply_text"].startswith("ACCESS_REFUSED"), info
        c.read_until_eof(timeout=10)


@pytest.mark.allow_errors(r"403|503|ACCESS_REFUSED|COMMAND_INVALID|mechanism")
def test_unknown_auth_mechanism_refused(shared_broker):
    with raw_amqp.RawConnection(HOST, shared_broker.port) as c:
        c.send(raw_amqp.PROTOCOL_HEADER)
        f = c.expect_method(0, raw_amqp.CONNECTION_START)
        start = raw_amqp.decode_start(f.args)
        assert "PLAIN" in start["mechanisms"]
        assert "AMQPLAIN" in start["mechanisms"]
        assert start["version_major"] == 0 and start["version_minor"] == 9
        c.send_method(0, raw_amqp.CONNECTION_START_OK,
                      raw_amqp.start_ok_args(mechanism="NO-SUCH-MECH"))
        # RabbitMQ closes the socket without a connection.close (after a
        # delay); a connection.close with 403/503 is acceptable too. What must
        # not happen is the handshake going on with connection.tune.
        try:
            f = c.read_frame(timeout=15)
        except raw_amqp.ConnectionClosedError:
            return
        assert f.method == raw_amqp.CONNECTION_CLOSE, f
        info = raw_amqp.decode_close(f.args)
        assert info["reply_code"] in (raw_amqp.ACCESS_REFUSED, raw_amqp.COMMAND_INVALID), info


def test_amqplain_mechanism(shared_broker):
    """AMQPLAIN: the response is a field table body (no length prefix) with
    LOGIN and PASSWORD."""
    with raw_amqp.RawConnection(HOST, shared_broker.port) as c:
        c.send(raw_amqp.PROTOCOL_HEADER)
        c.expect_method(0, raw_amqp.CONNECTION_START)
        body = raw_amqp.table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
        args = (raw_amqp.table({"product": "raw"}) + raw_amqp.shortstr("AMQPLAIN")
                + raw_amqp.longstr(body) + raw_amqp.shortstr("en_US"))
        c.send_method(0, raw_amqp.CONNECTION_START_OK, args)
        f = c.expect_method(0, raw_amqp.CONNECTION_TUNE)
        tune = raw_amqp.decode_tune(f.args)
        c.send_method(0, raw_amqp.CONNECTION_TUNE_OK,
                      raw_amqp.tune_ok_args(tune["channel_max"], tune["frame_max"], 0))
        c.send_method(0, raw_amqp.CONNECTION_OPEN, raw_amqp.open_args("/"))
        c.expect_method(0, raw_amqp.CONNECTION_OPEN_OK)
        c.open_channel(1)
        c.close()


@pytest.mark.allow_errors(r"530|NOT_ALLOWED|vhost")
def test_unknown_vhost_pika(shared_broker):
    with pytest.raises(pika.exceptions.AMQPConnectionError) as ei:
        pika.BlockingConnection(pika.ConnectionParameters(
            HOST, shared_broker.port, virtual_host="no-such-vhost",
            credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1, socket_timeout=10))
    assert connection_error_code(ei.value) == 530, repr(ei.value)


@pytest.mark.allow_errors(r"530|NOT_ALLOWED|vhost")
def test_unknown_vhost_raw(shared_broker):
    with raw_amqp.RawConnection(HOST, shared_broker.port) as c:
        c.send(raw_amqp.PROTOCOL_HEADER)
        c.expect_method(0, raw_amqp.CONNECTION_START)
        c.send_method(0, raw_amqp.CONNECTION_START_OK, raw_amqp.start_ok_args())
        f = c.expect_method(0, raw_amqp.CONNECTION_TUNE)
        tune = raw_amqp.decode_tune(f.args)
        c.send_method(0, raw_amqp.CONNECTION_TUNE_OK,
                      raw_amqp.tune_ok_args(tune["channel_max"], tune["frame_max"], 0))
        c.send_method(0, raw_amqp.CONNECTION_OPEN, raw_amqp.open_args("no-such-vhost"))
        info = c.wait_connection_close(timeout=10)
        assert info["reply_code"] == raw_amqp.NOT_ALLOWED, info
        assert (info["class_id"], info["method_id"]) == raw_amqp.CONNECTION_OPEN, info


def test_tune_values(shared_broker):
    with raw_amqp.RawConnection(HOST, shared_broker.port) as c:
        c.handshake(frame_max=0, channel_max=0)
        tune = c.tune
        assert tune["frame_max"] >= 4096, tune
        assert 1 <= tune["channel_max"] <= 65535, tune
        c.close()


@pytest.mark.broker_args("--frame-max", "8192")
def test_frame_max_option(broker, connect):
    conn = connect(broker)
    assert conn._impl.params.frame_max == 8192
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = os.urandom(100 * 1024)  # split by pika into 8 KiB frames
    ch.confirm_delivery()
    ch.basic_publish("", q, body)
    assert get_one(ch, q, auto_ack=True)[2] == body


@pytest.mark.broker_args("--max-message-size", "1024")
@pytest.mark.allow_errors(r"406|PRECONDITION_FAILED|size")
def test_max_message_size_option(broker, connect):
    conn = connect(broker)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x" * 1024)
    assert get_one(ch, q, auto_ack=True)[2] == b"x" * 1024
    ch.basic_publish("", q, b"x" * 2048)
    with channel_error(406):
        ch.basic_qos(prefetch_count=0)


# ---------------------------------------------------------------------------
# scale
# ---------------------------------------------------------------------------

def test_many_channels(shared_broker, connect):
    conn = connect(shared_broker)
    chans = [conn.channel() for _ in range(200)]
    assert len({c.channel_number for c in chans}) == 200
    q = chans[0].queue_declare("", exclusive=True).method.queue
    for i, c in enumerate(chans):
        c.basic_publish("", q, b"%d" % i)
    got = set()
    for c in chans:
        got.add(get_one(c, q, auto_ack=True)[2])
    assert got == {b"%d" % i for i in range(200)}
    for c in chans[::2]:
        c.close()
    for c in chans[1::2]:
        assert c.is_open
        c.basic_qos(prefetch_count=1)
    # channel numbers are reusable after close
    again = [conn.channel() for _ in range(50)]
    for c in again:
        c.queue_declare(q, passive=True)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_16mib_message_round_trip(shared_broker, connect):
    conn = connect(shared_broker, frame_max=131072)
    assert conn._impl.params.frame_max == 131072
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = os.urandom(16 * 1024 * 1024)
    ch.confirm_delivery()
    ch.basic_publish("", q, body, pika.BasicProperties(message_id="big"))
    c = Consumer(ch, q)
    c.wait(1, timeout=60)
    method, props, got = c.messages[0]
    assert props.message_id == "big"
    assert len(got) == len(body)
    assert got == body
    ch.basic_ack(method.delivery_tag)
    # and the connection is still healthy afterwards
    ch.basic_publish("", q, b"small")
    c.wait(2)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_thousand_queues(shared_broker, connect):
    conn = connect(shared_broker)
    ch = conn.channel()
    prefix = uniq("many")
    n = 10000
    for i in range(n):
        ch.queue_declare("%s.%d" % (prefix, i))
    ch.basic_publish("", "%s.%d" % (prefix, n - 1), b"last")
    assert get_one(ch, "%s.%d" % (prefix, n - 1), auto_ack=True)[2] == b"last"
    for i in range(n):
        ch.queue_delete("%s.%d" % (prefix, i))
    assert not queue_exists(conn, "%s.0" % prefix)
    assert not queue_exists(conn, "%s.%d" % (prefix, n - 1))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_thousand_concurrent_connections(make_broker, connect):
    n = 1000
    raise_nofile_limit(4 * n + 256)  # before starting the broker: it inherits the limit
    b = make_broker()
    conns = []
    try:
        for i in range(n):
            c = raw_amqp.RawConnection(HOST, b.port, timeout=30)
            conns.append(c)
            c.handshake()
        # every connection is open at the same time: open a channel on each
        for c in conns:
            c.send_method(1, raw_amqp.CHANNEL_OPEN, raw_amqp.channel_open_args())
        for c in conns:
            c.expect_method(1, raw_amqp.CHANNEL_OPEN_OK, timeout=30)
        # a normal client still gets through
        pc = connect(b)
        ch = pc.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"ok")
        assert get_one(ch, q, auto_ack=True)[2] == b"ok"
        # polite close of all of them
        for c in conns:
            c.send_method(0, raw_amqp.CONNECTION_CLOSE, raw_amqp.close_args())
        for c in conns:
            f = c.read_frame(timeout=30)
            while f.method != raw_amqp.CONNECTION_CLOSE_OK:
                f = c.read_frame(timeout=30)
    finally:
        for c in conns:
            c.close_socket()


# ---------------------------------------------------------------------------
# shutdown
# ---------------------------------------------------------------------------

def test_sigterm_closes_clients_with_320(broker, connect):
    conn = connect(broker)
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)
    raw = raw_amqp.RawConnection(HOST, broker.port)
    try:
        raw.handshake()
        raw.open_channel(1)
        codes = []
        stopper = threading.Thread(target=lambda: codes.append(broker.stop()))
        stopper.start()
        info = raw.wait_connection_close(timeout=15)
        assert info["reply_code"] == raw_amqp.CONNECTION_FORCED, info
        assert info["reply_text"].startswith("CONNECTION_FORCED"), info
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
            pump(conn, 15)
        assert ei.value.reply_code == 320, repr(ei.value)
        stopper.join(30)
        assert codes == [0], "flotillad exit code after SIGTERM: %r" % codes
    finally:
        raw.close_socket()


def test_client_close_and_reconnect(shared_broker, connect):
    for _ in range(20):
        c = connect(shared_broker)
        c.channel().queue_declare("", exclusive=True)
        c.close()
        assert c.is_closed


# ---------------------------------------------------------------------------
# command line and config file options
# ---------------------------------------------------------------------------

def test_config_file_options(make_broker, connect, tmp_path):
    conf = tmp_path / "flotillad.conf"
    conf.write_text("# comment\nheartbeat = 7\nframe-max = 8192\n")
    b = make_broker(args=["--config", str(conf)])
    c = connect(b, heartbeat=None)
    assert c._impl.params.heartbeat == 7
    assert c._impl.params.frame_max == 8192
    # the command line wins over the file
    b2 = make_broker(args=["--config", str(conf), "--frame-max", "16384"])
    c2 = connect(b2, heartbeat=None)
    assert c2._impl.params.frame_max == 16384
    assert c2._impl.params.heartbeat == 7


def test_auth_no_accepts_any_credentials(make_broker, connect):
    b = make_broker(args=["--auth", "no"])
    c = connect(b, user="anyone", password="anything")
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"open door")
    assert get_one(ch, q, auto_ack=True)[2] == b"open door"


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED|auth|login|credential")
def test_auth_yes_is_the_default(shared_broker):
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        pika.BlockingConnection(pika.ConnectionParameters(
            HOST, shared_broker.port, credentials=pika.PlainCredentials("anyone", "anything"),
            connection_attempts=1, socket_timeout=10))


def test_vhost_option_creates_isolated_vhost(make_broker, connect):
    b = make_broker(args=["--vhost", "v1", "--vhost", "v2"])
    c_root = connect(b)
    c_v1 = connect(b, vhost="v1")
    c_v2 = connect(b, vhost="v2")
    chans = [c.channel() for c in (c_root, c_v1, c_v2)]
    for ch in chans:
        ch.queue_declare("same-name")
    chans[1].basic_publish("", "same-name", b"in-v1")
    assert get_one(chans[1], "same-name", auto_ack=True)[2] == b"in-v1"
    chans[1].basic_publish("", "same-name", b"in-v1-again")
    pump(c_v1, 0.2)
    assert chans[0].queue_declare("same-name", passive=True).method.message_count == 0
    assert chans[2].queue_declare("same-name", passive=True).method.message_count == 0
    assert chans[1].queue_declare("same-name", passive=True).method.message_count == 1
