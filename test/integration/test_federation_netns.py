"""Seed 000's topology across two hosts: brokers A and B on one host, C on
another, each host a network namespace joined through a switch namespace
(PLATFORM.md 4.3, addresses from 198.18.0.0/15). C's fabric is on a
non-loopback address, so the fabric runs TLS with a throwaway CA.
Bidirectional dynamic routes on amq.direct, qmf.default.direct and
qmf.default.topic, set up with the CLI as qpid-route would.

Needs root and `ip netns`; skipped otherwise. Namespaces are named fle-*
and always deleted, brokers always stopped, even when the test fails."""

import os
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import Broker, flotillad_path
from test_federation import cli_path
from test_federation_edge import make_ca, make_cert, tls_args
from test_management import password_hash

HOST1, HOST2 = "198.18.0.1", "198.18.0.2"


def ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20,
                          check=check)


def netns_unavailable():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    probe = "fle-probe-%s" % secrets.token_hex(3)
    if ip("netns", "add", probe, check=False).returncode != 0:
        return "ip netns add does not work here"
    ip("netns", "del", probe, check=False)
    return None


class NsBroker(Broker):
    """A flotillad inside a network namespace, AMQP on every address of it."""

    def __init__(self, ns, address, amqp_port, workdir, args, name):
        super().__init__(workdir, args=args, name=name)
        self.ns = ns
        self.address = address
        self.amqp_port = amqp_port

    def command(self):
        # Fixed ports: every namespace has ports of its own.
        return ["ip", "netns", "exec", self.ns, flotillad_path(), "--port",
                str(self.amqp_port),
                "--interface", "0.0.0.0", "--data-dir", str(self.data_dir),
                "--inspector-port", "0", "--log-output", "stderr"] + self.args

    def addr(self):
        # guest may log in from loopback only: the administrator "fed".
        return "fed/secret@%s:%d" % (self.address, self.port)

    def url(self):
        return "amqp://fed:secret@%s:%d/" % (self.address, self.port)


@pytest.fixture
def hosts(tmp_path):
    """Two 'hosts' (namespaces) on a switch namespace; yields their names and
    a list to append brokers to. Tears everything down in any case."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    tag = secrets.token_hex(2)
    sw, h1, h2 = "fle-sw-" + tag, "fle-h1-" + tag, "fle-h2-" + tag
    made = [sw]
    brokers = []
    try:
        ip("netns", "add", sw)
        ip("-n", sw, "link", "add", "br0", "type", "bridge")
        ip("-n", sw, "link", "set", "br0", "up")
        for i, (ns, address) in enumerate(((h1, HOST1), (h2, HOST2)), 1):
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            port = "fle%sp%d" % (tag, i)
            ip("link", "add", port, "netns", sw, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            ip("-n", sw, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "addr", "add", address + "/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        yield h1, h2, brokers
    finally:
        problems = []
        for b in brokers:
            problems.extend(b.finish())
        for ns in reversed(made):
            ip("netns", "del", ns, check=False)
    if problems:
        pytest.fail("broker problems:\n" + "\n".join(problems), pytrace=False)


def run_in(ns, *cmd, check=True, timeout=60):
    p = subprocess.run(["ip", "netns", "exec", ns] + [str(c) for c in cmd],
                       capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, "%s: exit %d\n%s\n%s" % (" ".join(map(str, cmd)),
                                                           p.returncode, p.stdout, p.stderr)
    return p


def flotilla_in(ns, *args, check=True):
    return run_in(ns, cli_path(), *args, check=check)


def python_in(ns, code):
    return run_in(ns, "/usr/bin/python3", "-c", code).stdout


PIKA = """
import pika, sys, time
def channel(host, port):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host, port, credentials=pika.PlainCredentials("fed", "secret"))).channel()
"""


def test_seed_000_topology_across_hosts(hosts, tmp_path, wait_until):
    h1, h2, brokers = hosts
    ca = make_ca(tmp_path, "ca")
    users = tmp_path / "users"
    users.write_text("guest:%s:administrator:*\nfed:%s:administrator:*\n"
                     % (password_hash("guest"), password_hash("secret")))

    def start(ns, address, name, amqp_port, fabric_interface, fabric_port, *extra):
        cert = make_cert(tmp_path, ca, name)
        b = NsBroker(ns, address, amqp_port, tmp_path / name,
                     ["--name", name, "--fabric-interface", fabric_interface,
                      "--fabric-port", fabric_port, "--link-maintenance-interval", "1",
                      "--users-file", users] + tls_args(cert, ca) + list(extra), name)
        brokers.append(b)
        b.start()
        return b

    # Bidirectional dynamic routes on the three exchanges: a duplex
    # connector per pair (one fabric connection carries both directions;
    # with TLS, two connections between the same pair of brokers break each
    # other, see docs/federation.md). Each link is named after the AMQP
    # address of the broker it leads to, so that route map follows it.
    exchanges = "exchange=amq.direct,qmf.default.direct,qmf.default.topic"

    def connector(remote_amqp, remote_fabric, own_amqp):
        return ["--connector", "name=%s address=fed/secret@%s %s duplex=yes remote-name=%s"
                % (remote_amqp, remote_fabric, exchanges, own_amqp)]

    a = start(h1, HOST1, "a", 10001, "0.0.0.0", 20001)
    b = start(h1, HOST1, "b", 10002, "127.0.0.1", 20002,
              *connector(HOST1 + ":10001", "127.0.0.1:20001", HOST1 + ":10002"))
    c = start(h2, HOST2, "c", 10001, HOST2, 20001,
              *connector(HOST1 + ":10001", HOST1 + ":20001", HOST2 + ":10001"))

    def links_up():
        out = [flotilla_in(h1, "link", "list", n.addr()).stdout for n in (a, b)]
        out.append(flotilla_in(h2, "link", "list", c.addr()).stdout)
        return all("Operational" in o and "Waiting" not in o and "Failed" not in o
                   for o in out)
    wait_until(links_up, 20)

    # route map prints the topology as qpid-route does.
    text = flotilla_in(h1, "route", "map", a.addr()).stdout
    print(text)
    for x in ("amq.direct", "qmf.default.direct", "qmf.default.topic"):
        assert "Exchange %s:" % x in text, text
    for n in (b, c):
        pair = sorted(["%s:%d" % (a.address, a.port), "%s:%d" % (n.address, n.port)])
        assert text.count("%s <=> %s" % tuple(pair)) == 3, text
    assert "Static Routes:\n  none found" in text

    # Consumers on C get what is published on A and B, exactly once.
    python_in(h2, PIKA + """
ch = channel(%r, %d)
ch.queue_declare("news")
ch.queue_bind("news", "amq.direct", "news")
""" % (HOST2, c.port))

    def news_keys_reached_b():
        out = flotilla_in(h1, "--json", "-b", b.url(), "list", "bridge").stdout
        return '"news"' in out
    wait_until(news_keys_reached_b, 20)
    for n in (a, b):
        python_in(h1, PIKA + """
ch = channel(%r, %d)
ch.confirm_delivery()
for i in range(50):
    ch.basic_publish("amq.direct", "news", ("%s-%%d" %% i).encode())
""" % (HOST1, n.port, n.name))
    got = python_in(h2, PIKA + """
ch = channel(%r, %d)
got = []
deadline = time.time() + 20
while time.time() < deadline and len(got) < 100:
    m, p, body = ch.basic_get("news", auto_ack=True)
    if m is None:
        time.sleep(0.05)
    else:
        got.append(body.decode())
time.sleep(1.0)   # a duplicate would show now
while True:
    m, p, body = ch.basic_get("news", auto_ack=True)
    if m is None:
        break
    got.append(body.decode())
print("\\n".join(got))
""" % (HOST2, c.port)).split()
    assert sorted(got) == sorted(["%s-%d" % (n, i) for n in "ab" for i in range(50)]), got

    # A management request sent to B and addressed to A reaches A; the
    # reply comes back over the route. Also from C, on the other host.
    over = flotilla_in(h1, "-b", b.url(), "--node", "a",
                       "--json", "overview").stdout
    assert '"node": "a"' in over, over
    over = flotilla_in(h2, "-b", c.url(), "--node", "a",
                       "--json", "overview").stdout
    assert '"node": "a"' in over, over
