"""/metrics of the web inspector: the Prometheus text exposition format
(0.0.4) must parse, with Debian's python3-prometheus-client and with the
strict checker below, and carry the documented names, types and values."""

import base64
import os
import re
import signal
import urllib.error
import urllib.request

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

import helpers
from test_federation import addr, bridges, cli, mgmt, route_with_traffic

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

# name -> type, as listed in docs/inspector.md
EXPECTED = {
    "flotilla_build_info": "gauge",
    "flotilla_uptime_seconds": "gauge",
    "flotilla_resident_memory_bytes": "gauge",
    "flotilla_vhosts": "gauge",
    "flotilla_exchanges": "gauge",
    "flotilla_queues": "gauge",
    "flotilla_bindings": "gauge",
    "flotilla_connections": "gauge",
    "flotilla_channels": "gauge",
    "flotilla_consumers": "gauge",
    "flotilla_messages_ready": "gauge",
    "flotilla_messages_unacked": "gauge",
    "flotilla_messages_ready_bytes": "gauge",
    "flotilla_alarm": "gauge",
    "flotilla_vhost_queues": "gauge",
    "flotilla_queue_messages_ready": "gauge",
    "flotilla_queue_messages_unacked": "gauge",
    "flotilla_queue_consumers": "gauge",
    "flotilla_queue_bytes_ready": "gauge",
    "flotilla_vhost_exchanges": "gauge",
    "flotilla_exchange_bindings": "gauge",
    "flotilla_exchange_messages_in_total": "counter",
    "flotilla_exchange_messages_out_total": "counter",
    "flotilla_exchange_unroutable_total": "counter",
    "flotilla_vhost_connections": "gauge",
    "flotilla_connection_channels": "gauge",
    "flotilla_connection_consumers": "gauge",
    "flotilla_connection_messages_received_total": "counter",
    "flotilla_connection_messages_sent_total": "counter",
    "flotilla_connection_received_bytes_total": "counter",
    "flotilla_connection_sent_bytes_total": "counter",
}
for c in ("published", "delivered", "redelivered", "acked", "rejected", "dead_lettered",
          "expired", "purged", "overflowed", "discarded", "requeued"):
    EXPECTED["flotilla_queue_messages_%s_total" % c] = "counter"
# Federation (docs/federation.md, Observability).
EXPECTED.update({
    "flotilla_link_up": "gauge",
    "flotilla_link_state": "gauge",
    "flotilla_link_connects_total": "counter",
    "flotilla_route_messages_in_total": "counter",
    "flotilla_route_messages_out_total": "counter",
    "flotilla_route_bytes_in_total": "counter",
    "flotilla_route_bytes_out_total": "counter",
    "flotilla_route_backlog": "gauge",
    "flotilla_route_in_flight": "gauge",
    "flotilla_route_lag_seconds": "gauge",
    "flotilla_route_dropped_total": "counter",
    "flotilla_route_unroutable_total": "counter",
    "flotilla_route_refused_total": "counter",
    "flotilla_route_alarm": "gauge",
    "flotilla_route_active": "gauge",
})


def parse_strict(text):
    """Checks the 0.0.4 text format strictly. Returns
    {family: {"type": t, "help": h, "samples": {(name, labels tuple): value}}}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families = {}
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        assert line, "empty line at " + where
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert NAME.match(name), where
            assert name not in families, "family declared twice at " + where
            assert help_text, "HELP without text at " + where
            families[name] = {"help": help_text, "type": None, "samples": {}}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert name == current, "TYPE of another family than HELP at " + where
            assert typ in TYPES, where
            assert families[name]["type"] is None and not families[name]["samples"], where
            families[name]["type"] = typ
            continue
        assert not line.startswith("#"), "unexpected comment at " + where
        m = SAMPLE.match(line)
        assert m, "malformed sample at " + where
        name, labels, value = m.groups()
        assert current is not None and families[current]["type"], "sample before TYPE: " + where
        assert name == current, "sample %s outside its family %s at %s" % (name, current, where)
        pairs = ()
        if labels:
            inner = labels[1:-1]
            found = LABEL.findall(inner)
            rebuilt = ",".join('%s="%s"' % kv for kv in found)
            assert rebuilt == inner, "malformed labels at " + where
            keys = [k for k, _ in found]
            assert len(set(keys)) == len(keys), "repeated label at " + where
            unescape = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
            pairs = tuple((k, re.sub(r'\\[\\"n]', lambda m: unescape[m.group(0)], v))
                          for k, v in found)
        v = float(value)  # Raises on anything that is not a number, NaN or +-Inf.
        if families[current]["type"] == "counter":
            assert v >= 0, "negative counter at " + where
        key = (name, pairs)
        assert key not in families[current]["samples"], "duplicate series at " + where
        families[current]["samples"][key] = v
    return families


def scrape(broker, query=""):
    req = urllib.request.Request(broker.inspector_url + "/metrics" + query)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return res.read().decode()


def value(families, name, **labels):
    want = tuple(sorted(labels.items()))
    for (n, pairs), v in families[name]["samples"].items():
        if tuple(sorted(pairs)) == want:
            return v
    raise KeyError("%s%r not in %r" % (name, labels, list(families[name]["samples"])))


def test_strict_checker_rejects_bad_text():
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{q=\"1\"} 3\n"
    parse_strict(good)
    for bad in ["a 1\n",                                         # no HELP/TYPE
                good.replace("counter", "countr"),               # unknown type
                good + 'a_total{q="1"} 4\n',                    # duplicate series
                good.replace(" 3\n", " three\n"),                # not a number
                good.replace('q="1"', 'q="1",q="2"'),            # repeated label
                good.replace('{q="1"}', '{q=1}'),                # unquoted label
                good.rstrip("\n"),                               # no final newline
                good + "# HELP b y\n# TYPE b gauge\na_total 1\n"]:  # sample outside family
        with pytest.raises((AssertionError, ValueError)):
            parse_strict(bad)


def test_metrics_parse_and_mean_what_they_say(shared_broker, connect):
    c = connect(shared_broker)
    ch = c.channel()
    ch.queue_declare("metrics-q")
    ch.queue_declare('odd "name"\\')
    ch.confirm_delivery()
    for _ in range(3):
        ch.basic_publish("", "metrics-q", b"12345")
    method, _, _ = ch.basic_get("metrics-q", auto_ack=False)
    helpers.wait_until(lambda: 'queue="metrics-q"} 1' in scrape(shared_broker), 5)
    text = scrape(shared_broker)
    fams = parse_strict(text)
    for name, typ in EXPECTED.items():
        assert name in fams, "missing family " + name
        assert fams[name]["type"] == typ, name
    assert set(fams) == set(EXPECTED), "undocumented families: %s" % (set(fams) - set(EXPECTED))
    # The library parser agrees (it is lenient, but must not fail).
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["flotilla_queue_messages_ready"].type == "gauge"
    assert any(s.name == "flotilla_queue_messages_published_total"
               for f in parsed.values() for s in f.samples)
    q = {"vhost": "/", "queue": "metrics-q"}
    assert value(fams, "flotilla_queue_messages_ready", **q) == 2
    assert value(fams, "flotilla_queue_messages_unacked", **q) == 1
    assert value(fams, "flotilla_queue_bytes_ready", **q) == 10
    assert value(fams, "flotilla_queue_messages_published_total", **q) == 3
    assert value(fams, "flotilla_queue_messages_delivered_total", **q) == 1
    assert value(fams, "flotilla_queue_messages_ready", vhost="/", queue='odd "name"\\') == 0
    assert value(fams, "flotilla_queues") >= 2
    assert value(fams, "flotilla_connections") >= 1
    assert value(fams, "flotilla_alarm", source="memory") == 0
    assert value(fams, "flotilla_exchange_bindings", vhost="/", exchange="amq.direct",
                 type="direct") == 0
    conns = [pairs for (_, pairs) in fams["flotilla_connection_messages_received_total"]["samples"]]
    assert conns and all(dict(p)["user"] == "guest" for p in conns)
    assert sum(fams["flotilla_connection_messages_received_total"]["samples"].values()) >= 3


def test_aggregated_metrics_have_one_series_per_vhost(shared_broker, connect):
    c = connect(shared_broker)
    ch = c.channel()
    for i in range(30):
        ch.queue_declare("agg-%d" % i)
    ch.basic_publish("", "agg-3", b"x")
    helpers.wait_until(lambda: 'queue="agg-3"} 1' in scrape(shared_broker), 5)
    per_object = parse_strict(scrape(shared_broker, "?per_object=yes"))
    fams = parse_strict(scrape(shared_broker, "?per_object=no"))
    assert len(per_object["flotilla_queue_messages_ready"]["samples"]) >= 30
    for name in ("flotilla_queue_messages_ready", "flotilla_queue_messages_published_total",
                 "flotilla_exchange_bindings", "flotilla_vhost_queues"):
        assert list(fams[name]["samples"]) == [(name, (("vhost", "/"),))], name
    total_ready = sum(per_object["flotilla_queue_messages_ready"]["samples"].values())
    assert value(fams, "flotilla_queue_messages_ready", vhost="/") == total_ready
    assert value(fams, "flotilla_vhost_queues", vhost="/") == \
        len(per_object["flotilla_queue_messages_ready"]["samples"])


@pytest.mark.broker_args("--inspector-metrics-per-object", "no")
def test_option_sets_the_default(broker):
    fams = parse_strict(scrape(broker))
    assert all(len(dict(p)) == 1 for (_, p) in fams["flotilla_exchange_bindings"]["samples"])
    fams = parse_strict(scrape(broker, "?per_object=true"))
    assert len(fams["flotilla_exchange_bindings"]["samples"]) >= 7


def test_metrics_need_credentials(shared_broker):
    req = urllib.request.Request(shared_broker.inspector_url + "/metrics")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401


def wait_metric(wait_until, broker, name, want, timeout=10, **labels):
    """Waits until the per-object sample `name` with `labels` is `want`."""
    def reached():
        try:
            return value(parse_strict(scrape(broker, "?per_object=yes")), name, **labels) == want
        except KeyError:  # Not listed yet.
            return False
    wait_until(reached, timeout, message="%s%r == %r" % (name, labels, want))


def check_both_parsers(text):
    """The strict checker and Debian's prometheus_client accept `text`;
    returns the strict checker's families."""
    fams = parse_strict(text)
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert "flotilla_link_up" in parsed and "flotilla_route_lag_seconds" in parsed
    # Newer versions of the library name counter families without _total.
    dropped = parsed.get("flotilla_route_dropped") or parsed["flotilla_route_dropped_total"]
    assert dropped.type == "counter"
    return fams


def test_federation_metrics_of_two_brokers_and_a_route(make_broker, wait_until):
    src = make_broker(args=["--name", "metrics-src"])
    dest = make_broker(args=["--name", "metrics-dest"])
    # 5 messages, 40 body bytes (the empty one counts as a message).
    route = route_with_traffic(dest, src, "fed-metrics", [b"0123456789"] * 4 + [b""],
                               wait_until)
    link = "127.0.0.1:%d" % src.port
    src_node = mgmt(src, "overview")["overview"]["broker"]["node"]
    dest_node = mgmt(dest, "overview")["overview"]["broker"]["node"]

    # The destination: the link is up, the route "in" carried 5 messages.
    link_labels = {"link": link, "remote": src_node}
    into = {"vhost": "/", "direction": "in", "route": route, "remote": src_node}
    wait_metric(wait_until, dest, "flotilla_route_messages_in_total", 5, **into)
    fams = check_both_parsers(scrape(dest, "?per_object=yes"))
    assert value(fams, "flotilla_link_up", **link_labels) == 1
    assert value(fams, "flotilla_link_connects_total", **link_labels) == 1
    assert value(fams, "flotilla_link_state", link=link, state="Operational") == 1
    for other in ("Waiting", "Connecting", "Failed", "Closed"):
        assert value(fams, "flotilla_link_state", link=link, state=other) == 0
    assert value(fams, "flotilla_route_bytes_in_total", **into) == 40
    assert value(fams, "flotilla_route_messages_out_total", **into) == 0
    assert value(fams, "flotilla_route_unroutable_total", **into) == 0
    assert value(fams, "flotilla_route_refused_total", **into) == 0
    assert value(fams, "flotilla_route_alarm", **into) == 0
    assert value(fams, "flotilla_route_active", **into) == 1
    for reason in ("loop", "duplicate", "hops"):
        assert value(fams, "flotilla_route_dropped_total", reason=reason, **into) == 0
    # Backlog and lag come from the source's export, sampled every second.
    wait_metric(wait_until, dest, "flotilla_route_backlog", 0, **into)
    fams = parse_strict(scrape(dest, "?per_object=yes"))
    assert value(fams, "flotilla_route_lag_seconds", **into) == 0
    assert value(fams, "flotilla_route_in_flight", **into) == 0

    # The source: its export ("out") forwarded the same messages.
    out = {"vhost": "/", "direction": "out", "route": route, "remote": dest_node}
    wait_metric(wait_until, src, "flotilla_route_messages_out_total", 5, **out)
    fams = check_both_parsers(scrape(src, "?per_object=yes"))
    assert value(fams, "flotilla_route_bytes_out_total", **out) == 40
    assert value(fams, "flotilla_route_messages_in_total", **out) == 0
    assert fams["flotilla_link_up"]["samples"] == {}  # No link of its own.

    # Aggregated: one series per node (links) and per vhost and direction.
    fams = check_both_parsers(scrape(dest, "?per_object=no"))
    assert value(fams, "flotilla_link_up") == 1
    assert value(fams, "flotilla_link_connects_total") == 1
    assert value(fams, "flotilla_link_state", state="Operational") == 1
    assert value(fams, "flotilla_link_state", state="Failed") == 0
    assert list(fams["flotilla_route_messages_in_total"]["samples"]) == [
        ("flotilla_route_messages_in_total", (("vhost", "/"), ("direction", "in")))]
    assert value(fams, "flotilla_route_messages_in_total", vhost="/", direction="in") == 5

    # The management objects and the CLI carry the same numbers.
    [b] = bridges(dest)
    assert int(b["bytes_in"]) == 40 and int(b["backlog"]) == 0 and int(b["lag_ms"]) == 0
    [x] = [x for x in bridges(src) if x["direction"] == "out"]
    assert int(x["bytes_out"]) == 40 and int(x["messages_out"]) == 5
    [l] = [o["link"] for o in mgmt(dest, "list", "link")["objects"]]
    assert int(l["messages_in"]) == 5 and int(l["bytes_in"]) == 40
    text = cli("route", "list", addr(dest)).stdout
    assert "backlog" in text and "lag" in text and "40" in text
    text = cli("-b", "amqp://guest:guest@127.0.0.1:%d/" % dest.port, "stat", "links").stdout
    assert link in text and "Operational" in text


def test_route_backlog_and_lag_while_the_destination_stalls(make_broker, wait_until):
    """Messages forwarded to a stopped destination wait unacknowledged on
    the source: its export reports them as backlog, and their age as lag."""
    slow = ["--link-heartbeat-interval", "10"]  # The stall must not end the link.
    src = make_broker(args=slow)
    dest = make_broker(args=slow)
    cli("route", "add", addr(dest), addr(src), "amq.direct", "stall", "--ack", "5")
    wait_until(lambda: [x["state"] for x in bridges(dest)] == ["active"], 15)
    [route] = [x["name"] for x in bridges(dest)]
    dest_node = mgmt(dest, "overview")["overview"]["broker"]["node"]
    out = {"vhost": "/", "direction": "out", "route": route, "remote": dest_node}
    sconn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", src.port))
    sch = sconn.channel()
    sch.confirm_delivery()
    os.kill(dest.pid, signal.SIGSTOP)
    try:
        for i in range(12):
            sch.basic_publish("amq.direct", "stall", b"waiting", mandatory=True)

        seen = {}

        def stalled():
            fams = parse_strict(scrape(src, "?per_object=yes"))
            for k in ("backlog", "in_flight", "lag_seconds"):
                seen[k] = value(fams, "flotilla_route_" + k, **out)
            return (seen["backlog"] == 12 and seen["in_flight"] == 5
                    and seen["lag_seconds"] >= 1.0)
        wait_until(stalled, 10, message=lambda: "stalled: last seen %r" % seen)
        [x] = [x for x in bridges(src) if x["direction"] == "out"]
        assert int(x["backlog"]) == 12 and int(x["in_flight"]) == 5
        assert int(x["lag_ms"]) >= 1000
    finally:
        os.kill(dest.pid, signal.SIGCONT)
    # Once the destination answers again the backlog drains; the
    # destination's bridge shows what the source reports.
    wait_metric(wait_until, src, "flotilla_route_backlog", 0, timeout=20, **out)
    wait_until(lambda: [(x["backlog"], x["lag_ms"]) for x in bridges(dest)] == [("0", "0")], 10)
    assert [int(x["messages_in"]) for x in bridges(dest)] == [12]
    sconn.close()
