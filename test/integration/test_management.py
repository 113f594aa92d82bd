"""The flotilla CLI against a real broker: every verb, its errors and exit
codes, server-side paging, events and definitions (docs/management.md).

The CLI binary comes from $FLOTILLA_CLI (set by CMake), else it is looked up
next to $FLOTILLAD.
"""

import base64
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pika
import pytest

from conftest import flotillad_path
from helpers import uniq

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_CONNECT, EXIT_NOT_FOUND, EXIT_DENIED = range(6)


def cli_path():
    env = os.environ.get("FLOTILLA_CLI")
    if env:
        return env
    return str(Path(flotillad_path()).parent / "flotilla")


def run_cli(broker_or_url, *args, timeout=60, check=None):
    url = broker_or_url if isinstance(broker_or_url, str) else broker_or_url.url + "/"
    p = subprocess.run([cli_path(), "-b", url] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert p.returncode == check, "exit %d, expected %d\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, check, p.stdout, p.stderr)
    return p


def cli_json(broker, *args):
    p = run_cli(broker, "--json", *args, check=EXIT_OK)
    return json.loads(p.stdout)


def names(resp, kind):
    return [o[kind]["name"] for o in resp["objects"]]


def password_hash(password):
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)
    return "pbkdf2-sha256$1000$%s$%s" % (base64.b64encode(salt).decode(),
                                         base64.b64encode(digest).decode())


# -- help and usage -------------------------------------------------------------


def test_help_on_every_verb(shared_broker):
    p = subprocess.run([cli_path(), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "Commands:" in p.stdout
    for verb in ["overview", "health", "list", "get", "config", "purge", "peek",
                 "close-connection", "stat", "events", "definitions"]:
        p = subprocess.run([cli_path(), verb, "--help"], capture_output=True, text=True)
        assert p.returncode == 0, verb
        assert p.stdout.startswith("Usage"), (verb, p.stdout)
        assert verb in p.stdout


def test_usage_errors(shared_broker):
    assert run_cli(shared_broker, "frobnicate").returncode == EXIT_USAGE
    assert run_cli(shared_broker, "list").returncode == EXIT_USAGE
    p = run_cli(shared_broker, "list", "gizmos", check=EXIT_USAGE)
    assert "unknown kind 'gizmos'" in p.stderr
    p = run_cli(shared_broker, "config", "add", "queue", "q", "--bogus", check=EXIT_USAGE)
    assert "unknown option '--bogus'" in p.stderr
    p = run_cli(shared_broker, "list", "queue", "--page", "x", check=EXIT_USAGE)
    assert "--page" in p.stderr


def test_cannot_connect_exit_code():
    p = run_cli("amqp://guest:guest@127.0.0.1:1/", "overview", timeout=30)
    assert p.returncode == EXIT_CONNECT, p.stderr


def test_bad_password_exit_code(shared_broker):
    url = "amqp://guest:wrong@127.0.0.1:%d/" % shared_broker.port
    p = run_cli(url, "overview")
    assert p.returncode == EXIT_CONNECT, p.stderr
    assert "403" in p.stderr


# -- overview, health ---------------------------------------------------------------


def test_overview(shared_broker):
    q = uniq("ov")
    run_cli(shared_broker, "config", "add", "queue", q, check=EXIT_OK)
    c = pika.BlockingConnection(pika.URLParameters(shared_broker.url))
    ch = c.channel()
    for i in range(3):
        ch.basic_publish("", q, b"x" * 10)
    ch.queue_declare(q, passive=True)  # a round trip: the publishes are in
    out = cli_json(shared_broker, "overview")
    o = out["overview"]
    assert out["status"] == 200
    assert o["broker"]["version"] == "0.1.0"
    assert int(o["queues"]) >= 1
    assert int(o["messages_ready"]) >= 3
    assert int(o["connections"]) >= 2  # pika and the CLI itself
    text = run_cli(shared_broker, "overview", check=EXIT_OK).stdout
    assert "queues" in text and "alarms      none" in text
    c.close()


def test_health(shared_broker):
    out = cli_json(shared_broker, "health")
    assert out["health"]["status"] == "ok"
    checks = {c["name"]: c["ok"] for c in out["health"]["checks"]}
    assert checks["vhost /"] is True and checks["alarms"] is True
    assert "health: ok" in run_cli(shared_broker, "health", check=EXIT_OK).stdout


# -- config add / del, list, get --------------------------------------------------------


def test_queue_lifecycle(shared_broker):
    q = uniq("life")
    p = run_cli(shared_broker, "config", "add", "queue", q, "--durable", "--max-length", "5",
                "--argument", "x-message-ttl=60000", "--replicate", "all",
                "--alternate-exchange", "amq.fanout", check=EXIT_OK)
    assert "created" in p.stdout
    # Declaring it again with the same options is fine (as queue.declare).
    p = run_cli(shared_broker, "config", "add", "queue", q, "--durable", "--max-length", "5",
                "--argument", "x-message-ttl=60000", "--replicate", "all",
                "--alternate-exchange", "amq.fanout", check=EXIT_OK)
    assert "exists already" in p.stdout
    got = cli_json(shared_broker, "get", "queue", q)["objects"][0]["queue"]
    assert got["durable"] is True
    assert got["arguments"]["x-max-length"] == 5
    assert got["arguments"]["x-message-ttl"] == 60000
    assert got["replicate"] == "all"
    assert got["alternate_exchange"] == "amq.fanout"
    # Visible to any AMQP client: the broker enforces x-max-length.
    c = pika.BlockingConnection(pika.URLParameters(shared_broker.url))
    ch = c.channel()
    ok = ch.queue_declare(q, passive=True)
    for i in range(8):
        ch.basic_publish("", q, b"m%d" % i)
    assert ch.queue_declare(q, passive=True).method.message_count == 5
    c.close()
    # Refused while it holds messages, then forced.
    p = run_cli(shared_broker, "config", "del", "queue", q)
    assert p.returncode == EXIT_REFUSED and "406" in p.stderr, p.stderr
    p = run_cli(shared_broker, "config", "del", "queue", q, "--force", check=EXIT_OK)
    assert "5 messages" in p.stdout
    p = run_cli(shared_broker, "get", "queue", q, check=EXIT_NOT_FOUND)
    assert "404" in p.stderr and q in p.stderr
    assert ok  # keep pika's reply used


def test_exchange_and_binding_lifecycle(shared_broker):
    x, q = uniq("ex"), uniq("bq")
    run_cli(shared_broker, "config", "add", "exchange", "topic", x, "--durable", check=EXIT_OK)
    run_cli(shared_broker, "config", "add", "queue", q, check=EXIT_OK)
    run_cli(shared_broker, "config", "add", "binding", x, q, "orders.#", check=EXIT_OK)
    bindings = cli_json(shared_broker, "list", "binding", x)["objects"]
    assert [(b["binding"]["source"], b["binding"]["destination"], b["binding"]["routing_key"])
            for b in bindings] == [(x, q, "orders.#")]
    # Routing works for a normal client.
    c = pika.BlockingConnection(pika.URLParameters(shared_broker.url))
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish(x, "orders.eu", b"hi")
    assert ch.basic_get(q, auto_ack=True)[2] == b"hi"
    c.close()
    ex = cli_json(shared_broker, "get", "exchange", x)["objects"][0]["exchange"]
    assert ex["type"] == "topic" and ex["durable"] is True and int(ex["bindings"]) == 1
    run_cli(shared_broker, "config", "del", "binding", x, q, "orders.#", check=EXIT_OK)
    p = run_cli(shared_broker, "config", "del", "binding", x, q, "orders.#",
                check=EXIT_NOT_FOUND)
    assert "no binding" in p.stderr
    run_cli(shared_broker, "config", "del", "exchange", x, check=EXIT_OK)
    run_cli(shared_broker, "config", "del", "exchange", x, check=EXIT_NOT_FOUND)
    run_cli(shared_broker, "config", "del", "queue", q, check=EXIT_OK)


def test_exchange_to_exchange_binding(shared_broker):
    a, b = uniq("xa"), uniq("xb")
    run_cli(shared_broker, "config", "add", "exchange", "fanout", a, check=EXIT_OK)
    run_cli(shared_broker, "config", "add", "exchange", "fanout", b, check=EXIT_OK)
    run_cli(shared_broker, "config", "add", "binding", a, b, "--exchange-destination",
            check=EXIT_OK)
    rows = cli_json(shared_broker, "list", "binding", a)["objects"]
    assert rows[0]["binding"]["destination_type"] == "exchange"


def test_errors_from_the_broker(shared_broker):
    # Unknown queue, exchange, connection.
    p = run_cli(shared_broker, "purge", uniq("none"), check=EXIT_NOT_FOUND)
    assert "no queue" in p.stderr
    run_cli(shared_broker, "config", "del", "exchange", uniq("none"), check=EXIT_NOT_FOUND)
    run_cli(shared_broker, "close-connection", "999999", check=EXIT_NOT_FOUND)
    # Bad arguments.
    p = run_cli(shared_broker, "config", "add", "exchange", "bogus", uniq("x"),
                check=EXIT_REFUSED)
    assert "400" in p.stderr and "bogus" in p.stderr
    p = run_cli(shared_broker, "config", "add", "queue", uniq("q"), "--argument",
                "x-max-length=-1", check=EXIT_REFUSED)
    assert "406" in p.stderr and "x-max-length" in p.stderr
    p = run_cli(shared_broker, "config", "add", "queue", uniq("q"), "--replicate", "some",
                check=EXIT_REFUSED)
    assert "replicate" in p.stderr
    p = run_cli(shared_broker, "config", "add", "queue", uniq("q"), "--exclusive",
                check=EXIT_REFUSED)
    assert "exclusive" in p.stderr
    # Reserved names.
    p = run_cli(shared_broker, "config", "del", "exchange", "qmf.default.direct",
                check=EXIT_DENIED)
    assert "403" in p.stderr
    run_cli(shared_broker, "config", "add", "queue", "amq.nope", check=EXIT_DENIED)
    # Inequivalent redeclaration.
    q = uniq("neq")
    run_cli(shared_broker, "config", "add", "queue", q, "--durable", check=EXIT_OK)
    p = run_cli(shared_broker, "config", "add", "queue", q, check=EXIT_REFUSED)
    assert "406" in p.stderr and "durable" in p.stderr
    p = run_cli(shared_broker, "list", "queue", "--page", "1", "--sort", "colour",
                check=EXIT_REFUSED)
    assert "unknown sort key" in p.stderr


def test_purge(shared_broker):
    q = uniq("purge")
    run_cli(shared_broker, "config", "add", "queue", q, check=EXIT_OK)
    c = pika.BlockingConnection(pika.URLParameters(shared_broker.url))
    ch = c.channel()
    ch.confirm_delivery()
    for i in range(4):
        ch.basic_publish("", q, b"x")
    p = run_cli(shared_broker, "purge", q, check=EXIT_OK)
    assert "4 messages" in p.stdout
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    c.close()


def test_list_tables_and_json(shared_broker):
    q = uniq("tab")
    run_cli(shared_broker, "config", "add", "queue", q, check=EXIT_OK)
    out = run_cli(shared_broker, "list", "queue", check=EXIT_OK).stdout
    assert q in out and out.splitlines()[0].split()[:2] == ["queue", "dur"]
    ex = run_cli(shared_broker, "list", "exchange", check=EXIT_OK).stdout
    assert "amq.topic" in ex and "qmf.default.direct" in ex
    assert "guest" in run_cli(shared_broker, "list", "user", check=EXIT_OK).stdout
    vh = cli_json(shared_broker, "list", "vhost")
    assert names(vh, "vhost") == ["/"]
    br = cli_json(shared_broker, "list", "broker")
    assert br["objects"][0]["broker"]["vhosts"] == ["/"]
    # Federation/HA/cluster kinds exist in the schema, with nothing in them yet.
    assert cli_json(shared_broker, "list", "link")["objects"] == []


def test_stat_connections_consumers_channels(shared_broker):
    q = uniq("stat")
    c = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", shared_broker.port, client_properties={"connection_name": "stat-test"}))
    ch = c.channel()
    ch.queue_declare(q)
    ch.basic_qos(prefetch_count=7)
    ch.basic_consume(q, lambda *a: None, consumer_tag="ctag-" + q)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, b"12345")
    c.process_data_events(0.2)
    conns = cli_json(shared_broker, "stat", "connections")["objects"]
    mine = [x["connection"] for x in conns if x["connection"]["client_name"] == "stat-test"]
    assert len(mine) == 1
    assert int(mine[0]["published"]) == 5 and int(mine[0]["delivered"]) == 5
    assert int(mine[0]["published_bytes"]) == 25 and int(mine[0]["delivered_bytes"]) == 25
    assert mine[0]["rates"]["publish"] > 0 and mine[0]["rates"]["deliver"] > 0
    assert mine[0]["user"] == "guest" and mine[0]["channels"] == 1
    cons = cli_json(shared_broker, "stat", "consumers", q)["objects"]
    assert [(x["consumer"]["queue"], x["consumer"]["tag"]) for x in cons] == [(q, "ctag-" + q)]
    chans = cli_json(shared_broker, "list", "channel")["objects"]
    assert any(x["channel"]["prefetch"] == 7 and x["channel"]["unacked"] == 5 for x in chans)
    queues = cli_json(shared_broker, "stat", "queues", q)["objects"]
    s = queues[0]["queue"]
    assert int(s["messages_unacked"]) == 5 and int(s["consumers"]) == 1
    assert int(s["stats"]["published"]) == 5 and int(s["stats"]["delivered"]) == 5
    # Rates: 5 messages over a window of at most 10 s.
    assert s["stats"]["rates"]["publish"] > 0
    text = run_cli(shared_broker, "stat", "-q", q, check=EXIT_OK).stdout
    assert "in/s" in text and q in text
    assert "bytesIn" in run_cli(shared_broker, "stat", "-c", check=EXIT_OK).stdout
    assert "stat-test" in run_cli(shared_broker, "stat", "-c", check=EXIT_OK).stdout \
        or "127.0.0.1" in run_cli(shared_broker, "stat", "-c", check=EXIT_OK).stdout
    c.close()


def test_peek_shows_messages_without_taking_them(shared_broker):
    q = uniq("peek")
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", shared_broker.port))
    ch = c.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"first", pika.BasicProperties(
        content_type="text/plain", delivery_mode=2, headers={"k": "v"}, message_id="m1"))
    ch.basic_publish("", q, b"x" * 5000)
    ch.basic_publish("", q, b"third")
    reply = cli_json(shared_broker, "peek", q, "2")
    assert int(reply["message_count"]) == 3
    msgs = reply["messages"]
    assert len(msgs) == 2
    assert base64.b64decode(msgs[0]["body"]) == b"first"
    assert msgs[0]["routing_key"] == q and msgs[0]["redelivered"] is False
    assert msgs[0]["properties"]["content_type"] == "text/plain"
    assert msgs[0]["properties"]["delivery_mode"] == 2
    assert msgs[0]["properties"]["message_id"] == "m1"
    assert msgs[0]["headers"] == {"k": "v"}
    assert int(msgs[1]["body_size"]) == 5000 and msgs[1]["body_truncated"] is True
    assert len(base64.b64decode(msgs[1]["body"])) == 4096
    text = run_cli(shared_broker, "peek", q, check=EXIT_OK).stdout
    assert "first" in text and "third" in text and "(3 of 3 ready messages)" in text
    # Nothing was taken or marked redelivered.
    assert ch.queue_declare(q, passive=True).method.message_count == 3
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"first" and not m.redelivered
    run_cli(shared_broker, "peek", "no-such-queue", check=EXIT_NOT_FOUND)
    run_cli(shared_broker, "peek", q, "101", check=EXIT_REFUSED)
    ch.queue_delete(q)
    c.close()


def test_exchange_statistics(shared_broker):
    x = uniq("xstat")
    q1, q2 = uniq("xq"), uniq("xq")
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", shared_broker.port))
    ch = c.channel()
    ch.exchange_declare(x, "direct")
    for q in (q1, q2):
        ch.queue_declare(q)
        ch.queue_bind(q, x, "k")
    ch.confirm_delivery()
    for _ in range(3):
        ch.basic_publish(x, "k", b"m")       # to both queues
    ch.basic_publish(x, "nobody", b"m")      # unroutable
    got = cli_json(shared_broker, "get", "exchange", x)["objects"][0]["exchange"]
    assert (int(got["messages_in"]), int(got["messages_out"]), int(got["unroutable"])) == (4, 6, 1)
    text = run_cli(shared_broker, "stat", "-e", x, check=EXIT_OK).stdout
    assert "unroutable" in text and x in text
    for q in (q1, q2):
        ch.queue_delete(q)
    ch.exchange_delete(x)
    c.close()


def test_close_connection(shared_broker):
    c = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", shared_broker.port, client_properties={"connection_name": "victim"}))
    conns = cli_json(shared_broker, "list", "connection")["objects"]
    cid = [x["connection"]["id"] for x in conns if x["connection"]["client_name"] == "victim"][0]
    run_cli(shared_broker, "close-connection", cid, "maintenance", check=EXIT_OK)
    with pytest.raises(pika.exceptions.ConnectionClosed) as ei:
        for _ in range(50):
            c.process_data_events(0.1)
    assert "maintenance" in str(ei.value)


def test_stat_sort_top(shared_broker):
    prefix = uniq("top")
    c = pika.BlockingConnection(pika.URLParameters(shared_broker.url))
    ch = c.channel()
    ch.confirm_delivery()
    for i, n in enumerate([3, 1, 7]):
        q = "%s-%d" % (prefix, i)
        ch.queue_declare(q)
        for _ in range(n):
            ch.basic_publish("", q, b"x")
    c.close()
    out = cli_json(shared_broker, "stat", "queues", prefix + "-*", "--sort", "messages",
                   "--reverse", "--top", "2")
    assert names(out, "queue") == [prefix + "-2", prefix + "-0"]


# -- paging over 10,000 queues ---------------------------------------------------------------


@pytest.mark.timeout(240)
def test_paging_over_ten_thousand_queues(broker):
    c = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = c.channel()
    n = 10000
    for i in range(n):
        ch.queue_declare("page-%05d" % i)
    ch.queue_declare("page-%05d" % (n - 1), passive=True)
    c.close()
    # One page, server-side: the reply holds only that page.
    t0 = time.monotonic()
    out = cli_json(broker, "list", "queue", "page-*", "--page", "37", "--page-size", "100")
    elapsed = time.monotonic() - t0
    assert int(out["total"]) == n and out["page_count"] == 100 and out["page"] == 37
    assert names(out, "queue") == ["page-%05d" % i for i in range(3600, 3700)]
    assert elapsed < 10, elapsed
    # Reverse order, a pattern, and past the end.
    out = cli_json(broker, "list", "queue", "page-0000?", "--page", "1", "--page-size", "3",
                   "--reverse")
    assert int(out["total"]) == 10 and names(out, "queue") == ["page-00009", "page-00008",
                                                                 "page-00007"]
    out = cli_json(broker, "list", "queue", "page-*", "--page", "101", "--page-size", "100")
    assert out["objects"] == [] and int(out["total"]) == n
    # Sorting by a statistic asks every queue, and still answers one page.
    out = cli_json(broker, "list", "queue", "page-*", "--page", "1", "--page-size", "5",
                   "--sort", "messages")
    assert len(out["objects"]) == 5 and int(out["total"]) == n
    # The CLI fetches all pages when no page is given.
    text = run_cli(broker, "list", "queue", "page-*", check=EXIT_OK).stdout
    assert text.count("page-") == n


# -- authorization ---------------------------------------------------------------------------


@pytest.fixture
def users_broker(make_broker, tmp_path):
    users = tmp_path / "users"
    users.write_text("admin:%s:administrator:*\n"
                     "viewer:%s::/\n"
                     "outsider:%s::other\n" % (password_hash("pw1"), password_hash("pw2"),
                                                password_hash("pw3")))
    return make_broker(args=["--users-file", users, "--vhost", "other"])


def test_permissions(users_broker):
    port = users_broker.port
    admin = "amqp://admin:pw1@127.0.0.1:%d/" % port
    viewer = "amqp://viewer:pw2@127.0.0.1:%d/" % port
    outsider = "amqp://outsider:pw3@127.0.0.1:%d/other" % port
    q = uniq("perm")
    run_cli(admin, "config", "add", "queue", q, check=EXIT_OK)
    # Read-only queries: any user of the vhost.
    assert q in run_cli(viewer, "list", "queue", check=EXIT_OK).stdout
    run_cli(viewer, "overview", check=EXIT_OK)
    # Changes: administrators only.
    p = run_cli(viewer, "config", "add", "queue", uniq("no"), check=EXIT_DENIED)
    assert "403" in p.stderr and "administrator" in p.stderr
    run_cli(viewer, "purge", q, check=EXIT_DENIED)
    run_cli(viewer, "config", "del", "queue", q, check=EXIT_DENIED)
    # Another vhost than the user's.
    p = run_cli(outsider, "--vhost", "/", "list", "queue", check=EXIT_DENIED)
    assert "may not access vhost '/'" in p.stderr
    out = json.loads(run_cli(admin, "--json", "list", "vhost", check=EXIT_OK).stdout)
    assert sorted(names(out, "vhost")) == ["/", "other"]
    out = json.loads(run_cli(outsider, "--json", "list", "vhost", check=EXIT_OK).stdout)
    assert names(out, "vhost") == ["other"]
    # The admin acts on another vhost with --vhost.
    run_cli(admin, "--vhost", "other", "config", "add", "queue", "in-other", check=EXIT_OK)
    assert "in-other" in run_cli(outsider, "list", "queue", check=EXIT_OK).stdout


# -- events ---------------------------------------------------------------------------------


def test_events(shared_broker, procs):
    p = subprocess.Popen([cli_path(), "-b", shared_broker.url + "/", "events", "queue.*",
                          "--json", "--duration", "30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    # The subscription exists once the ready line is on stderr.
    assert "listening for events" in p.stderr.readline()
    q = uniq("ev")
    run_cli(shared_broker, "config", "add", "queue", q, "--durable", check=EXIT_OK)
    run_cli(shared_broker, "config", "del", "queue", q, check=EXIT_OK)
    # Other events (the CLI's own reply queues) come and go in between.
    events = []
    while len([e for e in events if e["name"] == q]) < 2:
        line = p.stdout.readline()
        assert line, "events ended early: %r" % events
        events.append(json.loads(line))
    p.terminate()
    mine = [(e["kind"], e["action"]) for e in events if e["name"] == q]
    assert mine == [("queue", "created"), ("queue", "deleted")], events
    created = [e for e in events if e["name"] == q][0]
    assert created["details"]["durable"] == "true" and created["vhost"] == "/"


def test_connection_events_with_pika(shared_broker):
    # Any client can subscribe: bind a queue to qmf.default.topic.
    c = pika.BlockingConnection(pika.URLParameters(shared_broker.url))
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "qmf.default.topic", "connection.#")
    other = pika.BlockingConnection(pika.URLParameters(shared_broker.url))
    other.close()
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        m, props, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            c.process_data_events(0.05)
            continue
        got.append((m.routing_key, json.loads(body)))
    keys = [k for k, _ in got]
    assert keys == ["connection.opened", "connection.closed"], got
    assert got[0][1]["details"]["user"] == "guest"
    assert got[0][1]["name"] == got[1][1]["name"]
    c.close()


# -- definitions ---------------------------------------------------------------------------------


def test_definitions_export_import_and_boot(make_broker, tmp_path):
    src = make_broker()
    run_cli(src, "config", "add", "exchange", "topic", "orders", "--durable", check=EXIT_OK)
    run_cli(src, "config", "add", "queue", "eu", "--durable", "--max-length", "100",
            check=EXIT_OK)
    run_cli(src, "config", "add", "binding", "orders", "eu", "order.eu.*", check=EXIT_OK)
    path = tmp_path / "defs.json"
    p = run_cli(src, "definitions", "export", path, check=EXIT_OK)
    assert "1 exchanges, 1 queues, 1 bindings" in p.stdout
    defs = json.loads(path.read_text())
    assert [x["name"] for x in defs["exchanges"]] == ["orders"]
    assert defs["queues"][0]["arguments"] == {"x-max-length": 100}
    assert defs["bindings"][0]["routing_key"] == "order.eu.*"
    assert defs["vhosts"] == [{"name": "/"}]
    # Import into an empty broker through the CLI...
    dst = make_broker()
    run_cli(dst, "definitions", "import", path, check=EXIT_OK)
    again = tmp_path / "again.json"
    run_cli(dst, "definitions", "export", again, check=EXIT_OK)
    assert json.loads(again.read_text()) == defs
    # ... and at boot with flotillad --definitions.
    boot = make_broker(args=["--definitions", path, "--no-data-dir"])
    c = pika.BlockingConnection(pika.URLParameters(boot.url))
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("orders", "order.eu.paris", b"bonjour")
    assert ch.basic_get("eu", auto_ack=True)[2] == b"bonjour"
    c.close()


def test_definitions_rabbitmq_file_at_boot(make_broker, tmp_path):
    # A RabbitMQ export: unknown sections and fields are ignored.
    path = tmp_path / "rabbit.json"
    path.write_text(json.dumps({
        "rabbit_version": "3.12.0",
        "users": [{"name": "guest", "password_hash": "x", "tags": ["administrator"]}],
        "permissions": [],
        "vhosts": [{"name": "/"}, {"name": "extra"}],
        "queues": [{"name": "jobs", "vhost": "extra", "durable": True, "auto_delete": False,
                    "type": "classic", "arguments": {"x-queue-type": "classic"}}],
        "exchanges": [],
        "bindings": [],
    }))
    b = make_broker(args=["--definitions", path])
    c = pika.BlockingConnection(pika.URLParameters(b.url + "/extra"))
    c.channel().queue_declare("jobs", passive=True, durable=True)
    c.close()


def test_bad_definitions_refuse_to_start(make_broker, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"queues": [{"name": "q", "arguments": {"x-max-length": -5}}]}')
    b = make_broker(args=["--definitions", path], start=False)
    with pytest.raises(Exception):
        b.start()
    assert "x-max-length" in b.log_text()
    b.allow_errors("definitions")
