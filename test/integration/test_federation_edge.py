"""Federation at the edges (docs/federation.md): connectors declared in
flotillad's config file, TLS on the fabric, `flotilla link test` and
management requests that cross routes."""

import subprocess
import time

import pytest

from conftest import flotillad_path
from test_federation import (addr, bridges, channel, cli, collect, drain, free_port,
                             links, mgmt)


def write_conf(tmp_path, name, *lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


# -- connectors in the config file -----------------------------------------------------------


def test_config_connector_include_exclude_duplex(make_broker, tmp_path, wait_until):
    a_fabric = free_port()
    # B first: A is not running yet, so the link retries with backoff.
    conf = write_conf(tmp_path, "b.conf",
                      "# B pulls from A, and A from B over the same link",
                      "connector = name=to-a address=guest/guest@127.0.0.1:%d "
                      "exchange=amq.direct include=orders.>,*.news exclude=orders.secret "
                      "duplex=yes max-hops=4" % a_fabric)
    b = make_broker(args=["--config", conf, "--name", "b", "--link-maintenance-interval", "1"])
    # The file is readable by others (mode 0644) and holds a password.
    assert "may hold connector passwords and others can read it" in b.log_text()
    waiting = wait_until(lambda: links(b).get("to-a", {}).get("last_error") and links(b)["to-a"],
                         10)
    assert waiting["state"] in ("Waiting", "Connecting"), waiting
    assert "cannot connect" in waiting["last_error"]
    a = make_broker(args=["--fabric-port", a_fabric, "--name", "a"])
    wait_until(lambda: links(b)["to-a"]["state"] == "Operational", 15)
    # Duplex: A got a link back over the same connection, and its route.
    wait_until(lambda: links(a).get("duplex:b/to-a", {}).get("state") == "Operational", 10)
    assert links(a)["duplex:b/to-a"]["transport"] == "duplex"
    wait_until(lambda: [x["state"] for x in bridges(a) if x["direction"] == "in"]
               == ["active"], 10)
    [route] = [x for x in bridges(b) if x["direction"] == "in"]
    assert route["dynamic"] and route["max_hops"] == 4
    # route map follows the connector's link to A's AMQP address (which A
    # gave when the link logged in), and names A's duplex link back after
    # the broker at its other end (B, by federation id): both directions.
    assert links(b)["to-a"]["remote_amqp_port"] == a.port
    text = cli("route", "map", addr(b)).stdout
    assert "127.0.0.1:%d... Ok" % a.port in text, text
    pair = sorted(["127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port])
    assert "%s <=> %s" % tuple(pair) in text, text

    # Consumers on B: only the keys the patterns allow travel to A.
    bconn, bch = channel(b)
    bch.queue_declare("qb")
    for key in ("orders.eu", "orders.secret", "eu.news", "other"):
        bch.queue_bind("qb", "amq.direct", key)
    wait_until(lambda: sorted(k for x in bridges(b) if x["direction"] == "in"
                              for k in x.get("keys", [])) == ["eu.news", "orders.eu"], 10)
    aconn, ach = channel(a)
    for key in ("orders.eu", "orders.secret", "eu.news", "other"):
        ach.basic_publish("amq.direct", key, key.encode())
    got = collect(bch, "qb", 2, wait_until)
    assert sorted(body for body, _ in got) == ["eu.news", "orders.eu"]

    # Consumers on A get what is published on B (the duplex direction).
    ach.queue_declare("qa")
    ach.queue_bind("qa", "amq.direct", "orders.us")
    ach.queue_bind("qa", "amq.direct", "orders.secret")
    wait_until(lambda: sorted(k for x in bridges(a) if x["direction"] == "in"
                              for k in x.get("keys", [])) == ["orders.us"], 10)
    bch.basic_publish("amq.direct", "orders.us", b"from b")
    bch.basic_publish("amq.direct", "orders.secret", b"secret from b")
    got = collect(ach, "qa", 1, wait_until)
    assert [body for body, _ in got] == ["from b"]

    # A stops: the duplex link on A is gone with the connection; B retries.
    aconn.close()
    a.stop()
    wait_until(lambda: links(b)["to-a"]["state"] != "Operational", 15)
    a.start()
    wait_until(lambda: links(b)["to-a"]["state"] == "Operational", 15)
    wait_until(lambda: links(a).get("duplex:b/to-a", {}).get("state") == "Operational", 10)
    bconn.close()


def test_bad_connector_line_names_file_and_line(tmp_path):
    conf = write_conf(tmp_path, "bad.conf", "port = 0", "",
                      "connector = name=x address=127.0.0.1 exchange=amq.direct")
    p = subprocess.run([flotillad_path(), "--config", str(conf), "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2
    assert "%s:3: " % conf in p.stderr and "host:port" in p.stderr, p.stderr
    conf = write_conf(tmp_path, "bad2.conf",
                      "connector = name=x address=127.0.0.1:1 exchange=amq.direct "
                      "include=a.>.b")
    p = subprocess.run([flotillad_path(), "--config", str(conf), "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2
    assert "%s:1: " % conf in p.stderr and "last word" in p.stderr, p.stderr
    # Without TLS, a connector may only lead to a loopback address.
    p = subprocess.run([flotillad_path(), "--data-dir", str(tmp_path), "--connector",
                        "name=x address=198.18.0.9:1 exchange=amq.direct"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "need fabric TLS" in p.stderr, p.stderr


# -- TLS on the fabric ------------------------------------------------------------------------


def openssl(*args):
    subprocess.run(["openssl"] + [str(a) for a in args], check=True, capture_output=True,
                   timeout=60)


def make_ca(d, name):
    """A throwaway CA: (certificate, key) paths."""
    cert, key = d / (name + ".pem"), d / (name + ".key")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "2", "-subj", "/CN=flotilla test " + name)
    return cert, key


def make_cert(d, ca, name):
    """A certificate signed by `ca`: (certificate, key) paths."""
    cert, key, csr = d / (name + ".pem"), d / (name + ".key"), d / (name + ".csr")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=" + name)
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-out", cert, "-days", "2")
    return cert, key


def tls_args(cert, ca):
    return ["--fabric-certificate", cert[0], "--fabric-key", cert[1],
            "--fabric-ca-file", ca[0]]


def test_tls_links(make_broker, tmp_path, wait_until):
    ca = make_ca(tmp_path, "ca")
    other = make_ca(tmp_path, "other")
    a_fabric = free_port()
    # With certificates a non-loopback fabric interface is allowed.
    a = make_broker(args=["--fabric-port", a_fabric, "--name", "a",
                          "--fabric-interface", "0.0.0.0"]
                    + tls_args(make_cert(tmp_path, ca, "a"), ca))
    line = ("connector = name=to-a address=127.0.0.1:%d exchange=amq.direct" % a_fabric)
    conf = write_conf(tmp_path, "c.conf", line)
    b = make_broker(args=["--config", conf, "--name", "b"]
                    + tls_args(make_cert(tmp_path, ca, "b"), ca))
    link = wait_until(lambda: links(b)["to-a"]["state"] == "Operational" and links(b)["to-a"],
                      15)
    assert link["transport"] == "tls"
    bconn, bch = channel(b)
    bch.queue_declare("qb")
    bch.queue_bind("qb", "amq.direct", "k")
    wait_until(lambda: [k for x in bridges(b) for k in x.get("keys", [])] == ["k"], 10)
    aconn, ach = channel(a)
    ach.basic_publish("amq.direct", "k", b"over tls")
    assert [body for body, _ in collect(bch, "qb", 1, wait_until)] == ["over tls"]
    aconn.close()
    bconn.close()
    # A certificate from another CA, and no TLS at all: Failed with the
    # reason, next attempt 64 s away (no hot retry loop).
    evil = make_broker(args=["--config", conf, "--name", "evil"]
                       + tls_args(make_cert(tmp_path, other, "evil"), other))
    plain = make_broker(args=["--config", conf, "--name", "plain"])
    for x in (evil, plain):
        failed = wait_until(lambda: links(x)["to-a"]["state"] == "Failed" and links(x)["to-a"],
                            15)
        assert "handshake" in failed["last_error"], failed
        assert int(failed["next_attempt_ms"]) - time.time() * 1000 > 50000
    assert "TLS" in links(evil)["to-a"]["last_error"]
    # The refused handshakes at A leave B's connection alone (they used to
    # drop it: tls_error_queue.cpp).
    assert links(b)["to-a"]["state"] == "Operational"
    assert int(links(b)["to-a"]["connects"]) == 1, links(b)["to-a"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tls_links_in_both_directions(make_broker, tmp_path, wait_until):
    """A links to B and B to A, each its own TLS connection between the same
    two CAF nodes: CAF closes the second as redundant, and that used to drop
    the first too (caf::openssl left an error in OpenSSL's error queue). Both
    links must stay up, carry messages both ways exactly once, and come back
    after a kill -9 and restart of one broker."""
    ca = make_ca(tmp_path, "ca")
    # Fixed fabric ports: the durable links find a restarted broker again.
    a_args = ["--fabric-port", free_port(), "--name", "a", "--link-maintenance-interval", "1"]
    b_args = ["--fabric-port", free_port(), "--name", "b", "--link-maintenance-interval", "1"]
    a = make_broker(args=a_args + tls_args(make_cert(tmp_path, ca, "a"), ca))
    b = make_broker(args=b_args + tls_args(make_cert(tmp_path, ca, "b"), ca))
    cli("route", "dynamic", "add", addr(a), addr(b), "amq.direct", "--durable")
    wait_until(lambda: [x["state"] for x in links(a).values()] == ["Operational"], 15)
    cli("route", "dynamic", "add", addr(b), addr(a), "amq.direct", "--durable")

    def both_up():
        la, lb = list(links(a).values()), list(links(b).values())
        return (len(la) == 1 and len(lb) == 1 and la[0]["state"] == "Operational"
                and lb[0]["state"] == "Operational" and (la[0], lb[0]))

    wait_until(both_up, 20, message=lambda: "links a %s, b %s" % (links(a), links(b)))
    # Stable: no connection lost, no second connect, for a few seconds.
    time.sleep(4)
    la, lb = wait_until(both_up, 1)
    assert int(la["connects"]) == 1 and int(lb["connects"]) == 1, (la, lb)
    for x in (a, b):
        assert "connection lost" not in x.log_text(), x.log_tail()

    def traffic():
        """qa on A and qb on B; what is published on one arrives on the other
        once."""
        aconn, ach = channel(a)
        bconn, bch = channel(b)
        ach.queue_declare("qa")
        ach.queue_bind("qa", "amq.direct", "ka")
        bch.queue_declare("qb")
        bch.queue_bind("qb", "amq.direct", "kb")

        def keys_in(x):
            return [k for r in bridges(x) if r["direction"] == "in" and r["state"] == "active"
                    for k in r.get("keys", [])]
        wait_until(lambda: keys_in(a) == ["ka"] and keys_in(b) == ["kb"], 15,
                   message=lambda: "keys a %s, b %s" % (bridges(a), bridges(b)))
        for i in range(3):
            bch.basic_publish("amq.direct", "ka", b"to a %d" % i)
            ach.basic_publish("amq.direct", "kb", b"to b %d" % i)
        got_a = collect(ach, "qa", 3, wait_until)
        got_b = collect(bch, "qb", 3, wait_until)
        assert sorted(body for body, _ in got_a) == ["to a %d" % i for i in range(3)]
        assert sorted(body for body, _ in got_b) == ["to b %d" % i for i in range(3)]
        aconn.close()
        bconn.close()

    traffic()
    # A dies hard and comes back with its durable link and route: both links
    # are up again (without a reconnect storm) and messages flow both ways.
    a.kill()
    wait_until(lambda: list(links(b).values())[0]["state"] != "Operational", 15)
    a.start()
    wait_until(both_up, 30, message=lambda: "links a %s, b %s" % (links(a), links(b)))
    time.sleep(3)
    la, lb = wait_until(both_up, 1)
    assert int(la["connects"]) == 1 and int(lb["connects"]) <= 3, (la, lb)
    traffic()


def test_tls_peer_killed_leaves_other_links_alone(make_broker, tmp_path, wait_until):
    """A pulls from B and from C over TLS; C is killed with -9. A's link to B
    must not notice (an error on one TLS connection used to drop the next
    connection CAF's I/O thread read from)."""
    ca = make_ca(tmp_path, "ca")
    a = make_broker(args=["--name", "a"] + tls_args(make_cert(tmp_path, ca, "a"), ca))
    b = make_broker(args=["--name", "b"] + tls_args(make_cert(tmp_path, ca, "b"), ca))
    c = make_broker(args=["--name", "c"] + tls_args(make_cert(tmp_path, ca, "c"), ca))
    cli("route", "dynamic", "add", addr(a), addr(b), "amq.direct")
    cli("route", "dynamic", "add", addr(a), addr(c), "amq.direct")
    to_b, to_c = "127.0.0.1:%d" % b.port, "127.0.0.1:%d" % c.port
    wait_until(lambda: [links(a)[x]["state"] for x in (to_b, to_c)]
               == ["Operational", "Operational"], 15)
    c.kill()
    wait_until(lambda: links(a)[to_c]["state"] != "Operational", 15)
    time.sleep(2)  # B's connection gets heartbeats and reads meanwhile.
    link = links(a)[to_b]
    assert link["state"] == "Operational" and int(link["connects"]) == 1, link
    assert "link %s Waiting" % to_b not in a.log_text(), a.log_tail()


def test_tls_options_are_checked(tmp_path):
    ca = make_ca(tmp_path, "ca")
    cert = make_cert(tmp_path, ca, "n")

    def run(*args):
        return subprocess.run([flotillad_path(), "--port", "0", "--inspector-port", "0",
                               "--data-dir", str(tmp_path)] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=20)
    # A certificate without its CA file: refused (CAF would not verify peers).
    p = run("--fabric-certificate", cert[0], "--fabric-key", cert[1])
    assert p.returncode == 2 and "fabric-ca-file" in p.stderr, p.stderr
    p = run("--fabric-certificate", tmp_path / "nope.pem", "--fabric-key", cert[1],
            "--fabric-ca-file", ca[0])
    assert p.returncode == 2 and "cannot read" in p.stderr, p.stderr


# -- federated management ---------------------------------------------------------------------


def test_management_request_crosses_routes(make_broker, wait_until):
    a = make_broker(args=["--name", "a"])
    b = make_broker(args=["--name", "b"])
    for x in ("qmf.default.direct", "qmf.default.topic"):
        cli("route", "dynamic", "add", addr(a), addr(b), x)
        cli("route", "dynamic", "add", addr(b), addr(a), x)
    # A's node name is interest on B's qmf.default.direct: requests to "a"
    # sent to B cross to A, and the reply comes back to the requester on B.
    wait_until(lambda: "a" in [k for x in bridges(b) if x["direction"] == "out"
                               for k in x.get("keys", [])], 10)
    aconn, ach = channel(a)
    ach.queue_declare("only-on-a")
    b_url = "amqp://guest:guest@127.0.0.1:%d/" % b.port
    over = cli("-b", b_url, "--node", "a", "--json", "overview").stdout
    assert '"node": "a"' in over, over
    text = cli("-b", b_url, "--node", "a", "list", "queue").stdout
    assert "only-on-a" in text
    assert "only-on-a" not in cli("-b", b_url, "list", "queue").stdout
    # Events of A show on B's qmf.default.topic.
    bconn, bch = channel(b)
    q = bch.queue_declare("", exclusive=True).method.queue
    bch.queue_bind(q, "qmf.default.topic", "queue.#")
    wait_until(lambda: "queue.#" in [k for x in bridges(a) if x["direction"] == "out"
                                     for k in x.get("keys", [])], 10)
    ach.queue_declare("new-on-a")
    events = []
    wait_until(lambda: events.extend(drain(bch, q)) or any(
        "new-on-a" in body for body, _ in events), 10)
    # A name nobody has: a clear error, not a hang.
    p = cli("-b", b_url, "--node", "nobody", "-t", "2", "overview", check=None)
    assert p.returncode != 0 and "nobody" in p.stderr, p.stderr
    aconn.close()
    bconn.close()


# -- flotilla link test -------------------------------------------------------------------------


def test_link_test(make_broker, tmp_path, wait_until):
    a = make_broker(args=["--name", "a"])
    b = make_broker(args=["--name", "b"])
    out = cli("link", "test", addr(b), addr(a)).stdout
    assert out.count(" ... ok") == 5 and "FAILED" not in out, out
    assert "(tcp)" in out
    assert links(b) == {}  # nothing was created
    # A chain x -> a: a route b <- a with --ttl 1 would drop x's messages.
    x = make_broker(args=["--name", "x"])
    cli("route", "add", addr(a), addr(x), "amq.direct", "k")
    p = cli("link", "test", addr(b), addr(a), "--ttl", "1", check=None)
    assert p.returncode == 1 and "hop limit 1 ... FAILED" in p.stdout, p.stdout
    assert cli("link", "test", addr(b), addr(a), "--ttl", "2").returncode == 0
    # TLS on the source only: the fabric check fails, clearly.
    ca = make_ca(tmp_path, "ca")
    t = make_broker(args=["--name", "t"] + tls_args(make_cert(tmp_path, ca, "t"), ca))
    p = cli("link", "test", addr(b), addr(t), check=None)
    assert p.returncode == 1 and "fabric connection" in p.stdout, p.stdout
    assert "FAILED: fabric handshake" in p.stdout, p.stdout
    # A source that is not there.
    port = free_port()
    p = cli("link", "test", addr(b), "127.0.0.1:%d" % port, check=None)
    assert p.returncode == 1 and "management lookup of SRC ... FAILED" in p.stdout, p.stdout
