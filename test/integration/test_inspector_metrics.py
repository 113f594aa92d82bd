"""/metrics of the web inspector: the Prometheus text exposition format
(0.0.4) must parse, with Debian's python3-prometheus-client and with the
strict checker below, and carry the documented names, types and values."""

import base64
import re
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import helpers

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
