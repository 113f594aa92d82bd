"""Management requests sent by a third-party client (pika) directly, as JSON
(docs/management.md): the protocol does not depend on the flotilla CLI."""

import json
import time
import uuid

import pika
import pytest

from helpers import uniq


class Management:
    """A minimal management client: a reply queue, publish, wait."""

    def __init__(self, url, user="guest"):
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.reply_to = self.ch.queue_declare("", exclusive=True).method.queue
        self.user = user

    def raw(self, body, content_type="application/json", user_id="default",
            reply_to=None, routing_key="broker"):
        corr = str(uuid.uuid4())
        props = pika.BasicProperties(
            content_type=content_type, correlation_id=corr,
            reply_to=reply_to or self.reply_to,
            user_id=self.user if user_id == "default" else user_id)
        self.ch.basic_publish("qmf.default.direct", routing_key, body, props)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m, p, b = self.ch.basic_get(self.reply_to, auto_ack=True)
            if m is None:
                self.conn.process_data_events(0.02)
                continue
            if p.correlation_id != corr:
                continue
            assert p.content_type == "application/json"
            resp = json.loads(b)
            assert p.headers["status"] == resp["status"]
            return resp
        raise AssertionError("no management reply")

    def call(self, **request):
        return self.raw(json.dumps(request).encode())

    def close(self):
        self.conn.close()


@pytest.fixture
def mgmt(shared_broker):
    m = Management(shared_broker.url + "/")
    yield m
    m.close()


def test_overview_and_health(mgmt, shared_broker):
    r = mgmt.call(method="overview")
    assert r["status"] == 200 and r["error"] == ""
    assert r["overview"]["broker"]["vhosts"] == ["/"]
    assert int(r["overview"]["connections"]) >= 1
    r = mgmt.call(method="HEALTH")  # enum names in any case
    assert r["health"]["status"] == "ok"


def test_create_list_get_delete_queue(mgmt, shared_broker):
    q = uniq("pk")
    r = mgmt.call(method="create", kind="queue",
                  queue={"name": q, "durable": True, "arguments": {"x-max-priority": 5}})
    assert r["status"] == 201, r
    # camelCase field names are accepted too (the protobuf JSON mapping).
    r = mgmt.call(method="create", kind="queue", queue={"name": q, "durable": True,
                                                          "arguments": {"x-max-priority": 5}})
    assert r["status"] == 200
    r = mgmt.call(method="list", kind="queue", list={"pattern": q, "pageSize": 10})
    assert r["total"] == "1" and r["objects"][0]["queue"]["name"] == q
    assert r["objects"][0]["queue"]["arguments"] == {"x-max-priority": 5}
    r = mgmt.call(method="get", kind="queue", name=q)
    assert r["objects"][0]["queue"]["durable"] is True
    r = mgmt.call(method="delete", kind="queue", name=q)
    assert r["status"] == 200
    r = mgmt.call(method="get", kind="queue", name=q)
    assert r["status"] == 404 and q in r["error"]


def test_exchanges_and_bindings(mgmt, shared_broker):
    x, q = uniq("px"), uniq("pq")
    assert mgmt.call(method="create", kind="exchange",
                     exchange={"name": x, "type": "direct"})["status"] == 201
    assert mgmt.call(method="create", kind="queue", queue={"name": q})["status"] == 201
    r = mgmt.call(method="create", kind="binding",
                  binding={"source": x, "destination": q, "routing_key": "k"})
    assert r["status"] == 201
    r = mgmt.call(method="list", kind="binding", list={"pattern": x})
    assert [(o["binding"]["source"], o["binding"]["destination"]) for o in r["objects"]] == [(x, q)]
    mgmt.ch.basic_publish(x, "k", b"routed")
    assert mgmt.call(method="purge", kind="queue", name=q)["message_count"] == "1"
    r = mgmt.call(method="delete", kind="binding",
                  binding={"source": x, "destination": q, "routing_key": "k"})
    assert r["status"] == 200
    assert mgmt.call(method="list", kind="binding", list={"pattern": x})["objects"] == []


def test_errors(mgmt, shared_broker):
    r = mgmt.raw(b"{not json")
    assert r["status"] == 400 and "JSON" in r["error"]
    r = mgmt.call(method="teleport")
    assert r["status"] == 400
    r = mgmt.call(method="list")
    assert r["status"] == 400 and "kind" in r["error"]
    r = mgmt.call(method="list", kind="queue", vhost="nowhere")
    assert r["status"] == 404 and "nowhere" in r["error"]
    r = mgmt.raw(b"<xml/>", content_type="text/xml")
    assert r["status"] == 400 and "content_type" in r["error"]
    r = mgmt.call(method="create", kind="exchange", exchange={"name": uniq("x")})
    assert r["status"] == 400 and "type" in r["error"]
    r = mgmt.call(method="create", kind="queue",
                  queue={"name": uniq("q"), "arguments": {"x-message-ttl": "soon"}})
    assert r["status"] == 406


def test_identity_is_required_and_validated(mgmt, shared_broker):
    r = mgmt.raw(json.dumps({"method": "overview"}).encode(), user_id=None)
    assert r["status"] == 401 and "user_id" in r["error"]
    # A forged user_id is refused by the broker before it reaches the agent.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        mgmt.raw(json.dumps({"method": "overview"}).encode(), user_id="admin")
    assert ei.value.reply_code == 406
    assert "authenticated user was 'guest'" in ei.value.reply_text


def test_node_name_routing_key(shared_broker, mgmt):
    node = mgmt.call(method="overview")["overview"]["broker"]["node"]
    r = mgmt.raw(json.dumps({"method": "get", "kind": "broker"}).encode(), routing_key=node)
    assert r["objects"][0]["broker"]["node"] == node


def test_events_subscription_with_pika(mgmt, shared_broker):
    ch = mgmt.ch
    events = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(events, "qmf.default.topic", "exchange.*")
    x = uniq("evx")
    assert mgmt.call(method="create", kind="exchange",
                     exchange={"name": x, "type": "fanout"})["status"] == 201
    got = None
    deadline = time.monotonic() + 10
    while got is None and time.monotonic() < deadline:
        m, p, b = ch.basic_get(events, auto_ack=True)
        if m is None:
            mgmt.conn.process_data_events(0.02)
            continue
        e = json.loads(b)
        if e["name"] == x:
            got = (m.routing_key, e, p)
    assert got is not None
    key, e, props = got
    assert key == "exchange.created" and e["details"]["type"] == "fanout"
    assert props.content_type == "application/json" and props.type == "event"
