"""Federation between real flotillad processes on one host (docs/federation.md).

Every broker listens on port 0 for AMQP, the inspector and the fabric; the
CLI (flotilla route / link) sets links and routes up exactly as a user would.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pika
import pytest

from conftest import flotillad_path
from test_management import password_hash

EXIT_OK = 0
EXIT_USAGE = 2


def cli_path():
    env = os.environ.get("FLOTILLA_CLI")
    if env:
        return env
    return str(Path(flotillad_path()).parent / "flotilla")


def addr(b, user=None, password=None):
    """The broker's AMQP address in qpid-route's form."""
    creds = "%s/%s@" % (user, password) if user else ""
    return "%s127.0.0.1:%d" % (creds, b.port)


def cli(*args, check=EXIT_OK):
    p = subprocess.run([cli_path()] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60)
    if check is not None:
        assert p.returncode == check, "flotilla %s: exit %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, args)), p.returncode, p.stdout, p.stderr)
    return p


def mgmt(b, *args):
    p = cli("-b", "amqp://guest:guest@127.0.0.1:%d/" % b.port, "--json", *args)
    return json.loads(p.stdout)


def request(b, body):
    """A management request straight over AMQP (what the CLI does)."""
    conn, ch = channel(b)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("qmf.default.direct", "broker", json.dumps(body).encode(),
                     pika.BasicProperties(reply_to=q, correlation_id="1", user_id="guest",
                                          content_type="application/json"))
    for method, props, reply in ch.consume(q, auto_ack=True, inactivity_timeout=10):
        assert method is not None, "no management reply"
        conn.close()
        return json.loads(reply)


def links(b):
    return {o["link"]["name"]: o["link"] for o in mgmt(b, "list", "link").get("objects", [])}


def bridges(b):
    return [o["bridge"] for o in mgmt(b, "list", "bridge").get("objects", [])]


def channel(b):
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", b.port))
    return c, c.channel()


def drain(ch, queue):
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body.decode(), props.headers or {}))


def collect(ch, queue, expected, wait_until, timeout=20):
    """Gets messages until `expected` arrived, then waits a little longer so
    that a duplicate would show."""
    got = []
    wait_until(lambda: got.extend(drain(ch, queue)) or len(got) >= expected, timeout,
               message="%d messages in %s" % (expected, queue))
    time.sleep(1.0)
    got.extend(drain(ch, queue))
    return got


def route_with_traffic(dest, src, key, bodies, wait_until):
    """Adds a route for `key` on amq.direct from `src` into `dest`, waits
    until it is active, binds queue KEY-in to it on `dest`, publishes
    `bodies` on `src` and waits until all arrived. Returns the route's
    name."""
    cli("route", "add", addr(dest), addr(src), "amq.direct", key)
    wait_until(lambda: [x["state"] for x in bridges(dest)] == ["active"], 15)
    [route] = [x["name"] for x in bridges(dest)]
    dconn, dch = channel(dest)
    dch.queue_declare(key + "-in")
    dch.queue_bind(key + "-in", "amq.direct", key)
    sconn, sch = channel(src)
    sch.confirm_delivery()
    for body in bodies:
        sch.basic_publish("amq.direct", key, body)
    wait_until(lambda: dch.queue_declare(key + "-in", passive=True).method.message_count
               == len(bodies), 15)
    sconn.close()
    dconn.close()
    return route


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- the fabric -----------------------------------------------------------------------------


def test_fabric_port_printed_and_reported(broker):
    assert broker.fabric_port and broker.fabric_port != broker.port
    b = mgmt(broker, "overview")["overview"]["broker"]
    assert b["fabric_port"] == broker.fabric_port
    assert b["fabric_interface"] == "127.0.0.1"
    assert len(b["federation_id"]) == 16
    # Nothing configured yet: empty lists, not errors.
    assert links(broker) == {} and bridges(broker) == []


def test_non_loopback_fabric_is_refused(tmp_path):
    p = subprocess.run([flotillad_path(), "--port", "0", "--inspector-port", "0",
                        "--data-dir", str(tmp_path), "--fabric-interface", "0.0.0.0"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "loopback" in p.stderr


# -- links ----------------------------------------------------------------------------------


@pytest.mark.allow_errors()
def test_link_states_auth_failure_and_events(make_broker, tmp_path, wait_until):
    users = tmp_path / "users"
    users.write_text("guest:%s:administrator:*\nfed:%s::*\n"
                     % (password_hash("guest"), password_hash("secret")))
    src = make_broker(args=["--users-file", users])
    dest = make_broker()
    # Watch link events on the destination.
    conn, ch = channel(dest)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "qmf.default.topic", "link.#")
    # A wrong password (the CLI would not get past the source's login, so
    # ask the destination directly): Failed, with the reason, no hot retries.
    name = "127.0.0.1:%d" % src.port
    r = request(dest, {"method": "create", "kind": "link",
                       "link": {"name": name, "host": "127.0.0.1", "port": src.fabric_port,
                                "user": "fed", "password": "wrong"}})
    assert r["status"] == 201, r
    failed = wait_until(lambda: links(dest).get(name, {}).get("state") == "Failed"
                        and links(dest)[name], 10)
    assert "authentication failed for user 'fed'" in failed["last_error"]
    assert int(failed["next_attempt_ms"]) - time.time() * 1000 > 50000  # 64 s away
    assert "refused link" in src.log_text()
    cli("link", "del", addr(dest), addr(src))
    assert links(dest) == {}
    # The right password: Operational; the remote is named.
    cli("link", "add", addr(dest), addr(src, "fed", "secret"))
    up = wait_until(lambda: links(dest).get(name, {}).get("state") == "Operational"
                    and links(dest)[name], 10)
    assert up["remote_id"] == mgmt(src, "overview")["overview"]["broker"]["federation_id"]
    assert up["last_error"] == "" and int(up["connects"]) == 1
    text = cli("link", "list", addr(dest)).stdout
    assert "Operational" in text and name in text
    # The events: Connecting, Failed, Closed, Connecting, Operational...
    states = []
    wait_until(lambda: states.extend(json.loads(b)["details"]["state"]
                                     for b, _ in drain(ch, q)) or "Operational" in states, 5)
    assert "Failed" in states and "Closed" in states, states
    conn.close()


def test_link_reconnects_when_the_source_comes_back(make_broker, wait_until):
    # A fixed fabric port, so that the link finds the restarted source.
    src = make_broker(args=["--fabric-port", free_port()])
    dest = make_broker(args=["--link-maintenance-interval", "1"])
    cli("route", "add", addr(dest), addr(src), "amq.direct", "k")
    name = "127.0.0.1:%d" % src.port
    wait_until(lambda: links(dest).get(name, {}).get("state") == "Operational", 10)
    conn, ch = channel(dest)
    ch.queue_declare("in")
    ch.queue_bind("in", "amq.direct", "k")
    src.stop()
    lost = wait_until(lambda: links(dest)[name]["state"] == "Waiting" and links(dest)[name],
                      10)
    assert lost["last_error"] != ""
    src.start()
    wait_until(lambda: links(dest)[name]["state"] == "Operational", 15)
    wait_until(lambda: all(b["state"] == "active" for b in bridges(dest)), 10)
    sconn, sch = channel(src)
    sch.basic_publish("amq.direct", "k", b"after restart")
    got = collect(ch, "in", 1, wait_until)
    assert [b for b, _ in got] == ["after restart"]
    assert int(links(dest)[name]["connects"]) == 2
    sconn.close()
    conn.close()


# -- static routes --------------------------------------------------------------------------


def test_static_route(make_broker, wait_until):
    a = make_broker()
    b = make_broker()
    cli("route", "add", addr(b), addr(a), "amq.direct", "k1", "--ack", "10")
    wait_until(lambda: [x["state"] for x in bridges(b)] == ["active"], 10)
    bconn, bch = channel(b)
    bch.queue_declare("qb")
    bch.queue_bind("qb", "amq.direct", "k1")
    bch.queue_bind("qb", "amq.direct", "k2")
    aconn, ach = channel(a)
    ach.confirm_delivery()
    for i in range(200):
        ach.basic_publish("amq.direct", "k1", b"m%d" % i)
    ach.basic_publish("amq.direct", "k2", b"not routed over the link")
    got = collect(bch, "qb", 200, wait_until)
    assert [body for body, _ in got] == ["m%d" % i for i in range(200)]
    a_id = mgmt(a, "overview")["overview"]["broker"]["federation_id"]
    assert got[0][1]["x-flotilla-trace"] == a_id
    assert [h["x-flotilla-origin-seq"] for _, h in got] == list(range(1, 201))
    [br] = bridges(b)
    assert br["direction"] == "in" and br["key"] == "k1" and br["credit"] == 10
    assert int(br["messages_in"]) == 200 and int(br["in_flight"]) == 0
    assert int(br["bytes_in"]) == sum(len(b"m%d" % i) for i in range(200))
    # Backlog and lag: what the source's export last sampled (every second).
    wait_until(lambda: [(x["backlog"], x["lag_ms"]) for x in bridges(b)] == [("0", "0")], 5)
    [out] = [x for x in bridges(a) if x["direction"] == "out"]
    assert int(out["messages_out"]) == 200 and int(out["bytes_out"]) == int(br["bytes_in"])
    text = cli("route", "list", addr(b)).stdout
    assert "amq.direct" in text and "k1" in text and "static" in text
    # Deleting the route stops the flow and drops the unused link.
    cli("route", "del", addr(b), addr(a), "amq.direct", "k1")
    assert bridges(b) == [] and links(b) == {}
    wait_until(lambda: [x for x in bridges(a)] == [], 10)
    ach.basic_publish("amq.direct", "k1", b"after del")
    time.sleep(0.5)
    assert drain(bch, "qb") == []
    aconn.close()
    bconn.close()


def test_messages_a_full_destination_queue_refuses_wait_on_the_source(make_broker, wait_until):
    """A destination queue full with reject-publish refuses what the route
    brings: the source keeps those messages (backlog, counted as refused)
    and forwards them again until they fit; none is lost or doubled."""
    a = make_broker()
    b = make_broker()
    cli("route", "add", addr(b), addr(a), "amq.direct", "full", "--ack", "10")
    wait_until(lambda: [x["state"] for x in bridges(b)] == ["active"], 10)
    bconn, bch = channel(b)
    bch.queue_declare("small", arguments={"x-max-length": 3, "x-overflow": "reject-publish"})
    bch.queue_bind("small", "amq.direct", "full")
    aconn, ach = channel(a)
    ach.confirm_delivery()
    for i in range(10):
        ach.basic_publish("amq.direct", "full", b"m%d" % i, mandatory=True)

    def out_route():
        [x] = [x for x in bridges(a) if x["direction"] == "out"]
        return x
    # Three fit; the other seven are refused and wait on the source.
    wait_until(lambda: int(out_route()["refused"]) >= 7 and int(out_route()["backlog"]) == 7, 10)
    assert bch.queue_declare("small", passive=True).method.message_count == 3
    [br] = bridges(b)
    assert int(br["refused"]) >= 7 and int(br["messages_in"]) == 3
    assert "refused" in cli("-b", "amqp://guest:guest@127.0.0.1:%d/" % a.port,
                            "stat", "routes").stdout
    # Consuming makes room: the rest arrive (retried every second).
    got = collect(bch, "small", 10, wait_until, timeout=30)
    assert sorted(body for body, _ in got) == sorted("m%d" % i for i in range(10))
    wait_until(lambda: int(out_route()["backlog"]) == 0
               and int(out_route()["messages_out"]) == 10, 10)
    assert int(bridges(b)[0]["messages_in"]) == 10
    aconn.close()
    bconn.close()


def test_cli_usage_errors(broker):
    p = cli("route", "dynamic", "add", addr(broker), addr(broker), "amq.direct",
            "--src-local", check=EXIT_USAGE)
    assert "dynamic routes are pulled" in p.stderr
    p = cli("route", "add", addr(broker), addr(broker), "amq.direct", "k", check=EXIT_USAGE)
    assert "same broker" in p.stderr
    cli("route", "dynamic", "add", addr(broker), check=EXIT_USAGE)
    assert "flotilla route dynamic add DEST SRC EXCHANGE" in cli("route", "--help").stdout


def test_push_route_src_local(make_broker, wait_until):
    """--src-local: the link goes from the source to the destination and
    the source's bridge pushes (qpid-route's push routes)."""
    src = make_broker()
    dest = make_broker()
    dconn, dch = channel(dest)
    dch.queue_declare("pushed")
    dch.queue_bind("pushed", "amq.direct", "k")
    cli("route", "add", addr(dest), addr(src), "amq.direct", "k", "--src-local")
    assert links(dest) == {}
    assert links(src)["127.0.0.1:%d" % dest.port]["state"] in (
        "Waiting", "Connecting", "Operational")
    wait_until(lambda: [(x["direction"], x["state"]) for x in bridges(src)
                        if x["direction"] == "push"] == [("push", "active")], 10)
    listing = cli("route", "list", addr(src)).stdout
    assert "static push" in listing
    sconn, sch = channel(src)
    for i in range(20):
        sch.basic_publish("amq.direct", "k", b"m%d" % i)
    got = collect(dch, "pushed", 20, wait_until)
    assert sorted(b for b, _ in got) == sorted("m%d" % i for i in range(20))
    # The push bridge counts what its local export forwarded; so does its link.
    body_bytes = sum(len("m%d" % i) for i in range(20))
    [push] = [x for x in bridges(src) if x["direction"] == "push"]
    assert (int(push["messages_out"]), int(push["bytes_out"])) == (20, body_bytes)
    link = links(src)["127.0.0.1:%d" % dest.port]
    assert (int(link["messages_out"]), int(link["bytes_out"])) == (20, body_bytes)
    # The destination lists the route too: in, pushed by the source (no
    # link of its own), with what it imported.
    src_node = mgmt(src, "overview")["overview"]["broker"]["node"]
    [imp] = bridges(dest)
    assert (imp["name"], imp["direction"], imp["state"], imp["src_local"], imp["peer"]) == (
        push["name"], "in", "active", True, src_node)
    assert (int(imp["messages_in"]), int(imp["bytes_in"])) == (20, body_bytes)
    assert "static push" in cli("route", "list", addr(dest)).stdout
    # flush on the destination leaves a peer's push route alone.
    cli("route", "flush", addr(dest))
    assert [x["name"] for x in bridges(dest)] == [push["name"]]
    # Deleted on the source (where it lives), with its link.
    cli("route", "del", addr(dest), addr(src), "amq.direct", "k", "--src-local")
    assert links(src) == {} and [x for x in bridges(src) if x["direction"] == "push"] == []
    wait_until(lambda: bridges(dest) == [], 10)
    sconn.close()
    dconn.close()


# -- dynamic routes -------------------------------------------------------------------------


def keys_in(b):
    return sorted(k for x in bridges(b) if x["direction"] == "in" for k in x.get("keys", []))


def test_dynamic_route_follows_bindings(make_broker, wait_until):
    a = make_broker()
    b = make_broker()
    cli("route", "dynamic", "add", addr(b), addr(a), "amq.direct")
    wait_until(lambda: [x["state"] for x in bridges(b)] == ["active"], 10)
    bconn, bch = channel(b)
    aconn, ach = channel(a)
    bch.queue_declare("qb")
    bch.queue_bind("qb", "amq.direct", "x")
    wait_until(lambda: keys_in(b) == ["x"], 10)
    wait_until(lambda: [k for o in bridges(a) for k in o.get("keys", [])] == ["x"], 10)
    for key in ("x", "y"):
        ach.basic_publish("amq.direct", key, key.encode())
    got = collect(bch, "qb", 1, wait_until)
    assert [body for body, _ in got] == ["x"]
    # Nothing but "x" crossed: "y" was never forwarded.
    [out] = [o for o in bridges(a) if o["direction"] == "out"]
    assert int(out["messages_out"]) == 1
    bch.queue_bind("qb", "amq.direct", "y")
    bch.queue_unbind("qb", "amq.direct", "x")
    wait_until(lambda: [k for o in bridges(a) for k in o.get("keys", [])] == ["y"], 10)
    for key in ("x", "y"):
        ach.basic_publish("amq.direct", key, key.encode())
    got = collect(bch, "qb", 1, wait_until)
    assert [body for body, _ in got] == ["y"]
    # Deleting the queue withdraws its bindings too.
    bch.queue_delete("qb")
    wait_until(lambda: keys_in(b) == [], 10)
    aconn.close()
    bconn.close()


def mesh(brokers, pairs, exchange="amq.direct"):
    for x, y in pairs:
        cli("route", "dynamic", "add", addr(brokers[x]), addr(brokers[y]), exchange)
        cli("route", "dynamic", "add", addr(brokers[y]), addr(brokers[x]), exchange)


def publish_numbered(b, tag, n, key="k"):
    conn, ch = channel(b)
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("amq.direct", key, ("%s-%d" % (tag, i)).encode())
    conn.close()


def check_exactly_once(brokers, queue_at, publishers, n, wait_until):
    expected = sorted("%s-%d" % (t, i) for t in publishers for i in range(n))
    for idx in queue_at:
        conn, ch = channel(brokers[idx])
        got = collect(ch, "q", len(expected), wait_until, timeout=30)
        bodies = sorted(body for body, _ in got)
        dupes = len(bodies) - len(set(bodies))
        assert dupes == 0, "broker %d got %d duplicates" % (idx, dupes)
        assert bodies == expected, "broker %d: %d of %d" % (idx, len(bodies), len(expected))
        conn.close()


def wait_for_interest(brokers, wait_until, key="k"):
    """Every bridge is active and every export carries `key`."""
    def ready():
        for b in brokers:
            for x in bridges(b):
                if x["state"] != "active" or key not in x.get("keys", []):
                    return False
        return True
    wait_until(ready, 20, message="interest propagated everywhere")


@pytest.mark.timeout(120)
def test_triangle_full_mesh_exactly_once(make_broker, wait_until):
    brokers = [make_broker() for _ in range(3)]
    mesh(brokers, [(0, 1), (1, 2), (2, 0)])
    for b in brokers:
        conn, ch = channel(b)
        ch.queue_declare("q")
        ch.queue_bind("q", "amq.direct", "k")
        conn.close()
    wait_for_interest(brokers, wait_until)
    n = 100
    for i, b in enumerate(brokers):
        publish_numbered(b, "b%d" % i, n)
    check_exactly_once(brokers, range(3), ["b0", "b1", "b2"], n, wait_until)
    # The redundant paths were cut by the duplicate window, visibly.
    dropped = sum(int(x.get("dropped_duplicate", 0)) + int(x.get("dropped_loop", 0))
                  for b in brokers for x in bridges(b))
    assert dropped > 0
    text = cli("route", "map", addr(brokers[0])).stdout
    assert text.count("<=>") == 3, text


@pytest.mark.timeout(120)
def test_diamond_with_paged_backlogs_exactly_once(make_broker, wait_until, tmp_path):
    """A -> B -> D and A -> C -> D, durable routes: while B's and C's links
    to A are cut, A's two export queues page their backlog out of memory.
    Each copy read back carries the origin number A gave the message (not a
    new one per copy), so D drops the second path's copy: exactly once."""
    a = make_broker(args=["--queue-memory-limit", "4KiB", "--name", "a"])
    b, c, d = (make_broker(args=["--name", n]) for n in ("b", "c", "d"))
    for mid in (b, c):
        cli("route", "add", addr(mid), addr(a), "amq.direct", "k", "--durable")
        cli("route", "add", addr(d), addr(mid), "amq.direct", "k")
    dconn, dch = channel(d)
    dch.queue_declare("q")
    dch.queue_bind("q", "amq.direct", "k")
    wait_until(lambda: [x["state"] for x in bridges(d)] == ["active", "active"]
               and all([x["state"] for x in bridges(m) if x["direction"] == "in"] == ["active"]
                       for m in (b, c)), 15)
    for mid in (b, c):
        cli("link", "cut", addr(mid), addr(a))
    wait_until(lambda: [x for x in bridges(a) if x["direction"] == "out"] == [], 10)
    n = 300
    conn, ch = channel(a)
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("amq.direct", "k", b"m%03d-" % i + b"x" * 200)
    conn.close()
    paging = a.data_dir / "paging"
    assert sum(p.stat().st_size for p in paging.iterdir()) > 2 * n * 150, \
        "A's export queues did not page"
    for mid in (b, c):
        cli("link", "heal", addr(mid), addr(a))
    got = collect(dch, "q", n, wait_until, timeout=30)
    time.sleep(1.0)
    got.extend(drain(dch, "q"))
    bodies = sorted(body.split("-")[0] for body, _ in got)
    assert bodies == sorted("m%03d" % i for i in range(n)), \
        "%d messages, %d distinct" % (len(bodies), len(set(bodies)))
    dropped = sum(int(x["dropped_duplicate"]) for x in bridges(d))
    assert dropped == n, dropped  # Every message came twice; one copy dropped.
    dconn.close()


def test_ring_of_four_exactly_once(make_broker, wait_until):
    brokers = [make_broker() for _ in range(4)]
    mesh(brokers, [(0, 1), (1, 2), (2, 3), (3, 0)])
    # Interested queues two hops away from the publisher, and next to it.
    for idx in (1, 2):
        conn, ch = channel(brokers[idx])
        ch.queue_declare("q")
        ch.queue_bind("q", "amq.direct", "k")
        conn.close()
    def ring_ready():
        # Broker 0 exports k to both neighbours (two paths to broker 2).
        outs = [x for x in bridges(brokers[0]) if x["direction"] == "out"]
        return len(outs) == 2 and all("k" in x.get("keys", []) for x in outs)
    wait_until(ring_ready, 20)
    n = 100
    publish_numbered(brokers[0], "a", n)
    publish_numbered(brokers[3], "d", n)
    check_exactly_once(brokers, (1, 2), ["a", "d"], n, wait_until)
    # Unbinding at broker 2 and 1 withdraws the interest everywhere.
    for idx in (1, 2):
        conn, ch = channel(brokers[idx])
        ch.queue_delete("q")
        conn.close()
    wait_until(lambda: all(not x.get("keys") for b in brokers for x in bridges(b)), 20,
               message="interest withdrawn around the ring")
