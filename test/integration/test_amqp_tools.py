"""The rabbitmq-c command line tools (Debian's amqp-tools) against flotillad."""

import subprocess

import pika.exceptions
import pytest

from helpers import get_one, kill_process, popen, queue_state, uniq, wait_until

TOOL_TIMEOUT = 30


def tool(name, broker, *args, input=None, check=True):
    cmd = [name, "--url", broker.url] + [str(a) for a in args]
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TOOL_TIMEOUT)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\nstdout: %r\nstderr: %r"
                             % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def test_declare_queue_prints_name(shared_broker, connect):
    q = uniq("tools")
    p = tool("amqp-declare-queue", shared_broker, "-q", q)
    assert p.stdout.decode().strip() == q
    assert queue_state(connect(shared_broker), q) == (0, 0)
    tool("amqp-delete-queue", shared_broker, "-q", q)


def test_declare_durable_queue(shared_broker, connect):
    q = uniq("tools.durable")
    tool("amqp-declare-queue", shared_broker, "-d", "-q", q)
    ch = connect(shared_broker).channel()
    ch.queue_declare(q, durable=True)  # equivalent: no 406
    ch.queue_delete(q)


def test_publish_default_exchange_and_get(shared_broker):
    q = uniq("tools")
    tool("amqp-declare-queue", shared_broker, "-q", q)
    try:
        tool("amqp-publish", shared_broker, "-r", q, "-b", "hello from amqp-publish")
        p = tool("amqp-get", shared_broker, "-q", q)
        assert p.stdout == b"hello from amqp-publish"
    finally:
        tool("amqp-delete-queue", shared_broker, "-q", q)


def test_get_empty_queue_fails(shared_broker):
    q = uniq("tools")
    tool("amqp-declare-queue", shared_broker, "-q", q)
    try:
        p = tool("amqp-get", shared_broker, "-q", q, check=False)
        assert p.returncode != 0
        assert p.stdout == b""
    finally:
        tool("amqp-delete-queue", shared_broker, "-q", q)


def test_publish_to_exchange_with_routing_key(shared_broker, connect):
    ch = connect(shared_broker).channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "tools.*")
    tool("amqp-publish", shared_broker, "-e", "amq.topic", "-r", "tools.x", "-b", "topic body",
         "-C", "text/plain", "-p")
    method, props, body = get_one(ch, q, auto_ack=True)
    assert body == b"topic body"
    assert method.exchange == "amq.topic" and method.routing_key == "tools.x"
    assert props.content_type == "text/plain"
    assert props.delivery_mode == 2


def test_publish_body_from_stdin(shared_broker, connect):
    ch = connect(shared_broker).channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    data = bytes(range(256)) * 64
    tool("amqp-publish", shared_broker, "-r", q, input=data)
    assert get_one(ch, q, auto_ack=True)[2] == data


def test_publish_line_by_line(shared_broker, connect):
    ch = connect(shared_broker).channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    tool("amqp-publish", shared_broker, "-r", q, "-l", input=b"one\ntwo\nthree\n")
    got = [get_one(ch, q, auto_ack=True)[2] for _ in range(3)]
    # amqp-publish -l keeps each line's newline in the body
    assert got == [b"one\n", b"two\n", b"three\n"]


def test_publish_to_missing_exchange_fails(shared_broker):
    p = tool("amqp-publish", shared_broker, "-e", uniq("x.missing"), "-r", "k", "-b", "x",
             check=False)
    # amqp-publish only notices the channel error when it closes; it must not
    # hang, and the broker must stay up (checked by the fixture).
    assert p.returncode in (0, 1), p


@pytest.mark.timeout(90)
def test_consume_count_runs_command(shared_broker, tmp_path, procs):
    q = uniq("tools")
    tool("amqp-declare-queue", shared_broker, "-q", q)
    out = tmp_path / "consumed"
    script = 'cat >> "%s"; echo >> "%s"' % (out, out)
    consumer = popen(["amqp-consume", "--url", shared_broker.url, "-q", q, "-c", "3",
                      "--", "sh", "-c", script],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(consumer)
    try:
        for i in range(3):
            tool("amqp-publish", shared_broker, "-r", q, "-b", "message-%d" % i)
        try:
            stdout, stderr = consumer.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            kill_process(consumer)
            raise AssertionError("amqp-consume -c 3 did not exit after 3 messages; got %r"
                                 % (out.read_bytes() if out.exists() else b"",))
        assert consumer.returncode == 0, stderr
        assert out.read_text().splitlines() == ["message-0", "message-1", "message-2"]
    finally:
        tool("amqp-delete-queue", shared_broker, "-q", q)


@pytest.mark.timeout(90)
def test_consume_exclusive_bound_queue(shared_broker, tmp_path, procs, connect):
    out = tmp_path / "consumed"
    key = uniq("tools.key")
    consumer = popen(["amqp-consume", "--url", shared_broker.url, "-e", "amq.direct",
                      "-r", key, "-x", "-c", "2", "-A",
                      "--", "sh", "-c", 'cat >> "%s"; echo >> "%s"' % (out, out)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(consumer)
    # wait until amqp-consume has declared and bound its queue: publish with
    # mandatory until it is routable
    ch = connect(shared_broker).channel()
    ch.confirm_delivery()

    def routable():
        try:
            ch.basic_publish("amq.direct", key, b"first", mandatory=True)
            return True
        except pika.exceptions.UnroutableError:
            return False
    wait_until(routable, 15, interval=0.1, message="amqp-consume's queue bound")
    ch.basic_publish("amq.direct", key, b"second", mandatory=True)
    try:
        consumer.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("amqp-consume -c 2 did not exit")
    assert consumer.returncode == 0, consumer.stderr.read()
    assert out.read_text().splitlines() == ["first", "second"]


def test_delete_queue(shared_broker, connect):
    q = uniq("tools")
    tool("amqp-declare-queue", shared_broker, "-q", q)
    tool("amqp-publish", shared_broker, "-r", q, "-b", "x")
    tool("amqp-delete-queue", shared_broker, "-q", q)
    assert queue_state(connect(shared_broker), q) is None


def test_tools_with_separate_connection_options(shared_broker):
    q = uniq("tools")
    common = ["--server", "127.0.0.1", "--port", str(shared_broker.port),
              "--username", "guest", "--password", "guest", "--vhost", "/"]
    subprocess.run(["amqp-declare-queue"] + common + ["-q", q], check=True,
                   timeout=TOOL_TIMEOUT, stdout=subprocess.DEVNULL)
    subprocess.run(["amqp-publish"] + common + ["-r", q, "-b", "opts"], check=True,
                   timeout=TOOL_TIMEOUT)
    p = subprocess.run(["amqp-get"] + common + ["-q", q], check=True, timeout=TOOL_TIMEOUT,
                       stdout=subprocess.PIPE)
    assert p.stdout == b"opts"
    subprocess.run(["amqp-delete-queue"] + common + ["-q", q], check=True,
                   timeout=TOOL_TIMEOUT, stdout=subprocess.DEVNULL)


@pytest.mark.allow_errors(r"403|ACCESS_REFUSED|auth|login|credential")
def test_tools_bad_password_fail(shared_broker):
    url = "amqp://guest:wrong@127.0.0.1:%d" % shared_broker.port
    p = subprocess.run(["amqp-declare-queue", "--url", url, "-q", uniq()],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TOOL_TIMEOUT)
    assert p.returncode != 0
