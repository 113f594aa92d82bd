"""Durable federation routes between real flotillad processes
(docs/federation.md, "Durable links and routes").

A publisher with confirms on the source and a consumer on the destination
check mechanically that no confirmed message is lost and that a message
arrives twice only as a redelivery, while the destination is killed and
restarted, while the link is cut by fault injection, while a network
partition cuts the fabric, and while the source restarts with messages
waiting in the route's durable queue.
"""

import json
import os
import shutil
import subprocess
import threading
import time

import pika
import pytest

from conftest import Broker
from test_federation import addr, bridges, cli, free_port, links, mgmt
from test_management import password_hash

EXCHANGE = "amq.direct"
KEY = "k"
QUEUE = "fed.in"
FAST = ["--link-maintenance-interval", "1", "--link-heartbeat-interval", "1"]


def source_args(fabric_port, name="src"):
    return ["--fabric-port", fabric_port, "--name", name] + FAST


def dest_args(name="dest"):
    return ["--name", name] + FAST


def bridge_in(b):
    got = [x for x in bridges(b) if x["direction"] == "in"]
    return got[0] if got else None


def bridge_state(b):
    x = bridge_in(b)
    return x and x["state"]


def route_queue(src_link, dest_name="dest"):
    """The durable route's queue on the source (static route on amq.direct)."""
    return "federation.%s.%s/%s/%s" % (dest_name, src_link, EXCHANGE, KEY)


def queue_names(b):
    return {o["queue"]["name"] for o in mgmt(b, "list", "queue").get("objects", [])}


def waiting_on_source(src, link):
    """Ready messages in the durable route's queue on the source."""
    for o in mgmt(src, "list", "queue").get("objects", []):
        if o["queue"]["name"] == route_queue(link):
            return int(o["queue"].get("messages_ready", 0))
    return 0


def declare_dest_queue(dest):
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", dest.port))
    ch = c.channel()
    ch.queue_declare(QUEUE, durable=True)
    ch.queue_bind(QUEUE, EXCHANGE, KEY)
    c.close()


def add_durable_route(dest, src, wait_until):
    declare_dest_queue(dest)
    cli("route", "add", addr(dest), addr(src), EXCHANGE, KEY, "--durable")
    wait_until(lambda: bridge_state(dest) == "active", 20, message="route active")
    return "127.0.0.1:%d" % src.port  # the link's name


class Publisher(threading.Thread):
    """Publishes persistent messages "seq" with confirms on `broker` until
    `count` are confirmed or stop() is called; survives the broker's
    restarts (unconfirmed messages are simply published again under a new
    number)."""

    def __init__(self, broker, count, pace=0.0):
        super().__init__(daemon=True)
        self.broker = broker
        self.count = count
        self.pace = pace
        self.confirmed = []
        self.errors = 0
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()

    def run(self):
        seq = 0
        conn = None
        while len(self.confirmed) < self.count and not self._halt.is_set():
            try:
                if conn is None or conn.is_closed:
                    conn = pika.BlockingConnection(pika.ConnectionParameters(
                        "127.0.0.1", self.broker.port, connection_attempts=1))
                    ch = conn.channel()
                    ch.confirm_delivery()
                seq += 1
                ch.basic_publish(EXCHANGE, KEY, str(seq).encode(),
                                 pika.BasicProperties(delivery_mode=2), mandatory=False)
                self.confirmed.append(seq)
                if self.pace:
                    time.sleep(self.pace)
            except Exception:
                self.errors += 1
                conn = None
                time.sleep(0.2)
        try:
            if conn is not None and conn.is_open:
                conn.close()
        except Exception:
            pass


class Consumer(threading.Thread):
    """Consumes QUEUE on `broker` with manual acks and records
    (seq, redelivered); reconnects after the broker's restarts."""

    def __init__(self, broker):
        super().__init__(daemon=True)
        self.broker = broker
        self.got = []
        self.lock = threading.Lock()
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()

    def seqs(self):
        with self.lock:
            return {s for s, _ in self.got}

    def run(self):
        while not self._halt.is_set():
            conn = None
            try:
                conn = pika.BlockingConnection(pika.ConnectionParameters(
                    "127.0.0.1", self.broker.port, connection_attempts=1))
                ch = conn.channel()
                ch.basic_qos(prefetch_count=50)
                for method, props, body in ch.consume(QUEUE, inactivity_timeout=0.2):
                    if self._halt.is_set():
                        break
                    if method is None:
                        continue
                    with self.lock:
                        self.got.append((int(body), method.redelivered))
                    ch.basic_ack(method.delivery_tag)
                conn.close()
            except Exception:
                time.sleep(0.2)


def check_no_loss(publisher, consumer):
    """Every confirmed message arrived; a second copy only as a redelivery."""
    seen = set()
    dups = 0
    for seq, redelivered in consumer.got:
        if seq in seen:
            dups += 1
            assert redelivered, "message %d arrived twice, the second time not " \
                                "marked redelivered" % seq
        seen.add(seq)
    missing = set(publisher.confirmed) - seen
    assert not missing, "%d confirmed messages lost, e.g. %s" % (
        len(missing), sorted(missing)[:10])
    return dups


def run_workload(src, dest, wait_until, disturb, count=1500, pace=0.002):
    """Publishes `count` confirmed messages on src while `disturb()` runs,
    then waits until the consumer on dest has all of them."""
    pub = Publisher(src, count, pace)
    con = Consumer(dest)
    con.start()
    pub.start()
    try:
        wait_until(lambda: len(pub.confirmed) >= count // 5, 60, message="first confirms")
        disturb()
        pub.join(180)
        assert not pub.is_alive(), "the publisher did not finish"
        wait_until(lambda: set(pub.confirmed) <= con.seqs(), 90,
                   message="every confirmed message on the destination")
        time.sleep(1.0)  # a late duplicate would show now
    finally:
        pub.stop()
        con.stop()
        pub.join(10)
        con.join(10)
    dups = check_no_loss(pub, con)
    print("confirmed %d, received %d, redelivered duplicates %d"
          % (len(pub.confirmed), len(con.got), dups))
    return pub, con


# -- durable routes -------------------------------------------------------------------------


def test_durable_route_is_kept_and_deleted(make_broker, wait_until):
    src = make_broker(args=source_args(free_port()))
    dest = make_broker(args=dest_args())
    link = add_durable_route(dest, src, wait_until)
    assert links(dest)[link]["durable"] is True
    assert bridge_in(dest)["durable"] is True
    routes = dest.data_dir / "federation.routes"
    assert routes.exists() and oct(routes.stat().st_mode & 0o777) == "0o600"
    assert route_queue(link) in queue_names(src)
    listing = cli("route", "list", addr(dest)).stdout
    assert "static durable" in listing
    # A clean restart of the destination: the route comes back by itself.
    dest.restart()
    wait_until(lambda: bridge_state(dest) == "active", 20, message="route back")
    assert links(dest)[link]["state"] == "Operational"
    # route del with the link up deletes the source queue, the link and the
    # entries of the routes file.
    cli("route", "del", addr(dest), addr(src), EXCHANGE, KEY)
    wait_until(lambda: route_queue(link) not in queue_names(src), 10,
               message="source queue deleted")
    assert links(dest) == {}
    assert "bridge" not in routes.read_text() and "link" not in routes.read_text()
    dest.restart()
    assert "did not delete its queue" not in dest.log_text()
    assert bridges(dest) == [] and links(dest) == {}
    # link del takes its durable routes and their source queues along (the
    # link stays until the source answered).
    cli("route", "add", addr(dest), addr(src), EXCHANGE, KEY, "--durable")
    wait_until(lambda: bridge_state(dest) == "active", 20, message="route active")
    cli("link", "del", addr(dest), addr(src))
    wait_until(lambda: route_queue(link) not in queue_names(src), 10,
               message="source queue deleted by link del")
    assert links(dest) == {} and bridges(dest) == []


def test_corrupt_routes_file_stops_the_broker(tmp_path):
    b = Broker(tmp_path / "b")
    routes = b.data_dir / "federation.routes"
    routes.write_text("flotilla-federation-routes 1\nlink a 127.0.0.1 1 ~ ~\nend 1 00000000\n")
    p = subprocess.run(b.command(), capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert str(routes) in p.stderr and "checksum" in p.stderr


def test_durable_route_needs_a_data_dir(make_broker):
    src = make_broker()
    dest = make_broker(args=["--no-data-dir"])
    p = cli("route", "add", addr(dest), addr(src), EXCHANGE, KEY, "--durable", check=1)
    assert "data dir" in p.stderr


def test_no_loss_while_destination_is_killed(make_broker, wait_until):
    src = make_broker(args=source_args(free_port()))
    dest = make_broker(args=dest_args())
    add_durable_route(dest, src, wait_until)

    def crash_destination():
        dest.kill()
        time.sleep(1.0)  # messages pile up in the source's durable queue
        dest.start()

    run_workload(src, dest, wait_until, crash_destination)
    assert bridge_state(dest) == "active"


def test_no_loss_while_link_is_cut_and_alarm(make_broker, wait_until):
    src = make_broker(args=source_args(free_port()))
    dest = make_broker(args=dest_args())
    link = add_durable_route(dest, src, wait_until)
    alarm = "route:" + bridge_in(dest)["name"]

    def alarms():
        return mgmt(dest, "overview")["overview"].get("alarms", [])

    def cut_and_heal():
        cli("link", "cut", addr(dest), addr(src))
        assert links(dest)[link]["fault"] == "cut"
        # Not running for more than three maintenance intervals: the alarm.
        wait_until(lambda: alarm in alarms(), 20, message="route alarm raised")
        assert bridge_in(dest)["alarm"] is True
        assert "ALARM" in cli("route", "list", addr(dest)).stdout
        # Messages wait in the source's durable queue meanwhile.
        wait_until(lambda: waiting_on_source(src, link) > 0, 20,
                   message="messages waiting on the source")
        cli("link", "heal", addr(dest), addr(src))

    run_workload(src, dest, wait_until, cut_and_heal)
    wait_until(lambda: alarm not in alarms(), 20, message="route alarm cleared")
    assert links(dest)[link].get("fault", "") == ""


def test_source_restart_with_messages_waiting(make_broker, wait_until):
    src = make_broker(args=source_args(free_port()))
    dest = make_broker(args=dest_args())
    link = add_durable_route(dest, src, wait_until)
    cli("link", "cut", addr(dest), addr(src))
    wait_until(lambda: bridge_state(dest) != "active", 10, message="route down")
    pub = Publisher(src, 500)
    pub.run()  # in this thread
    assert len(pub.confirmed) == 500
    # The source crashes with the messages in the route's durable queue and
    # comes back on the same fabric port (its AMQP port changes).
    src.kill()
    src.start()
    assert waiting_on_source(src, link) == 500
    cli("link", "heal", addr(dest), "127.0.0.1:%s" % link.split(":")[1])
    wait_until(lambda: bridge_state(dest) == "active", 30, message="route back")
    con = Consumer(dest)
    con.start()
    try:
        wait_until(lambda: set(pub.confirmed) <= con.seqs(), 60,
                   message="every waiting message on the destination")
        time.sleep(1.0)
    finally:
        con.stop()
        con.join(10)
    check_no_loss(pub, con)


def test_durable_push_route(make_broker, wait_until):
    """--src-local --durable: link, route and queue live on the source; the
    route survives the link being cut and the source restarting."""
    src = make_broker(args=source_args(0))
    dest = make_broker(args=dest_args())
    declare_dest_queue(dest)
    cli("route", "add", addr(dest), addr(src), EXCHANGE, KEY, "--durable", "--src-local")

    def push_state():
        got = [x["state"] for x in bridges(src) if x["direction"] == "push"]
        return got[0] if got else None

    wait_until(lambda: push_state() == "active", 20, message="push route active")
    link = "127.0.0.1:%d" % dest.port

    def cut_and_heal():
        cli("link", "cut", addr(src), addr(dest))
        wait_until(lambda: push_state() != "active", 10, message="push route down")
        time.sleep(1.0)
        cli("link", "heal", addr(src), addr(dest))

    run_workload(src, dest, wait_until, cut_and_heal)
    src.restart()
    wait_until(lambda: push_state() == "active", 20, message="push route back")
    assert links(src)[link]["durable"] is True


# -- a network partition of the fabric ---------------------------------------------------


NS = "fltfed%d" % os.getpid()
NS_ADDR = "198.18.7.1"
HOST_ADDR = "198.18.7.2"


def sh(*cmd, check=True):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=20, check=check)


@pytest.fixture
def netns():
    """One network namespace for both brokers: the fabric (loopback only
    until it has TLS) runs on its `lo`, the test reaches their AMQP ports
    over a veth pair. `ip link set lo down` in it partitions the fabric
    without closing a socket (no FIN, no RST): only heartbeats notice."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns) for the partition test")
    veth = "fv%d" % (os.getpid() % 100000)
    try:
        sh("ip", "netns", "add", NS)
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", NS)
        sh("ip", "addr", "add", HOST_ADDR + "/30", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", NS, "addr", "add", NS_ADDR + "/30", "dev", "eth0")
        sh("ip", "-n", NS, "link", "set", "eth0", "up")
        yield NS
    finally:
        sh("ip", "netns", "pids", NS, check=False)
        for pid in sh("ip", "netns", "pids", NS, check=False).stdout.split():
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass
        sh("ip", "link", "del", veth, check=False)
        sh("ip", "netns", "del", NS, check=False)


class NetnsBroker(Broker):
    """A flotillad inside the namespace, its AMQP port on the veth address
    (guest may only log in from loopback: the test uses USER)."""

    def __init__(self, workdir, ns, args=()):
        super().__init__(workdir, args=args, name="flotillad[%s]" % ns)
        self.ns = ns
        users = self.workdir / "users"
        users.write_text("%s:%s:administrator:*\n" % (USER, password_hash(USER)))
        self.args += ["--users-file", str(users)]

    def command(self):
        cmd = super().command()
        i = cmd.index("--interface")
        cmd[i + 1] = NS_ADDR
        return ["ip", "netns", "exec", self.ns] + cmd


USER = "fedtest"


def ns_addr(b):
    return "%s/%s@%s:%d" % (USER, USER, NS_ADDR, b.port)


def test_no_loss_across_a_fabric_partition(netns, tmp_path, wait_until, monkeypatch):
    src = NetnsBroker(tmp_path / "src", netns, source_args(free_port()))
    dest = NetnsBroker(tmp_path / "dest", netns, dest_args())
    made = [src, dest]
    try:
        src.start()
        dest.start()
        # The helpers of this file talk to 127.0.0.1 as guest; these brokers
        # answer on the namespace's address, to USER.
        monkeypatch.setattr(pika, "ConnectionParameters",
                            _params_for(pika.ConnectionParameters))
        import test_federation
        monkeypatch.setattr(test_federation, "mgmt", _mgmt_ns)
        monkeypatch.setattr("test_federation_durable.mgmt", _mgmt_ns)
        declare_dest_queue(dest)
        cli("route", "add", ns_addr(dest), ns_addr(src), EXCHANGE, KEY, "--durable")
        wait_until(lambda: bridge_state(dest) == "active", 20, message="route active")
        link = bridge_in(dest)["link"]

        def partition():
            sh("ip", "-n", netns, "link", "set", "lo", "down")
            cut = time.monotonic()
            # Heartbeats (1 s, four missed) notice the silent peer.
            wait_until(lambda: links(dest)[link]["state"] != "Operational", 30,
                       message="link down after the partition")
            print("partition noticed after %.1f s" % (time.monotonic() - cut))
            time.sleep(1.0)
            sh("ip", "-n", netns, "link", "set", "lo", "up")
            healed = time.monotonic()
            wait_until(lambda: bridge_state(dest) == "active", 30, message="route back")
            print("route active %.1f s after the heal" % (time.monotonic() - healed))

        run_workload(src, dest, wait_until, partition)
        assert bridge_state(dest) == "active"
        assert int(links(dest)[link]["connects"]) >= 2
    finally:
        for b in made:
            b.stop()
        problems = []
        for b in made:
            problems.extend(b.finish())
        assert not problems, "\n".join(problems)


def _params_for(original):
    def make(host="127.0.0.1", port=5672, *a, **kw):
        if host == "127.0.0.1":
            host = NS_ADDR
            kw["credentials"] = pika.PlainCredentials(USER, USER)
        return original(host, port, *a, **kw)
    return make


def _mgmt_ns(b, *args):
    p = cli("-b", "amqp://%s:%s@%s:%d/" % (USER, USER, NS_ADDR, b.port), "--json", *args)
    return json.loads(p.stdout)
