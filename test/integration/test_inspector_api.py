"""The web inspector's HTTP door (docs/inspector.md) against a real flotillad:
authentication (basic, login cookie, none), the JSON API's routes, paging,
filtering and sorting, 404s, permissions, /healthz and the WebSocket."""

import base64
import hashlib
import json
import os
import socket
import struct
import time
import urllib.error
import urllib.request

import pika
import pytest

import helpers


def password_hash(password):
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)
    return "pbkdf2-sha256$1000$%s$%s" % (base64.b64encode(salt).decode(),
                                         base64.b64encode(digest).decode())


def http(broker, path, user="guest", password="guest", method="GET", body=None,
         headers=None, cookie=None):
    """Returns (status, headers, body bytes)."""
    req = urllib.request.Request(broker.inspector_url + path, method=method, data=body)
    if user is not None:
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    if cookie:
        req.add_header("Cookie", cookie)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_json(broker, path, **kw):
    status, _, body = http(broker, path, **kw)
    return status, json.loads(body)


def declare(broker, names, durable=False):
    c = helpers.connect(broker.port)
    try:
        ch = c.channel()
        for n in names:
            ch.queue_declare(n, durable=durable)
    finally:
        helpers.close_quietly(c)


def publish(broker, queue, count, size=10):
    c = helpers.connect(broker.port)
    try:
        ch = c.channel()
        ch.confirm_delivery()
        for i in range(count):
            ch.basic_publish("", queue, b"x" * size)
    finally:
        helpers.close_quietly(c)


def test_inspector_port_is_printed(shared_broker):
    assert shared_broker.inspector_port and shared_broker.inspector_port != shared_broker.port


def test_healthz_needs_no_credentials(shared_broker):
    status, body = get_json(shared_broker, "/healthz", user=None)
    assert status == 200
    assert body["health"]["status"] == "ok"
    names = [c["name"] for c in body["health"]["checks"]]
    assert "alarms" in names and "vhost /" in names


@pytest.mark.parametrize("path", ["/api/overview", "/api/queues", "/metrics", "/ws",
                                  "/api/whoami", "/api/nope"])
def test_refused_without_credentials(shared_broker, path):
    status, headers, body = http(shared_broker, path, user=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert json.loads(body)["status"] == 401


def test_refused_with_wrong_password(shared_broker):
    status, _, _ = http(shared_broker, "/api/overview", password="nope")
    assert status == 401
    status, _, _ = http(shared_broker, "/api/overview", user="nobody", password="x")
    assert status == 401


def test_page_gets_no_basic_challenge(shared_broker):
    status, headers, _ = http(shared_broker, "/api/overview", user=None,
                              headers={"X-Flotilla-UI": "1"})
    assert status == 401
    assert headers.get("WWW-Authenticate") is None


def test_login_cookie_and_logout(shared_broker):
    form = b"user=guest&password=guest"
    ct = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, body = http(shared_broker, "/login", user=None, method="POST",
                                 body=form, headers=ct)
    assert status == 200, body
    assert json.loads(body) == {"user": "guest", "administrator": True}
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = cookie.split(";")[0]
    name, value = token.split("=", 1)
    assert name == "flotilla_session" and len(value) == 64
    status, who = get_json(shared_broker, "/api/whoami", user=None, cookie=token)
    assert status == 200 and who["user"] == "guest"
    # A made-up token is refused.
    status, _, _ = http(shared_broker, "/api/whoami", user=None,
                        cookie="flotilla_session=" + "0" * 64)
    assert status == 401
    status, _, _ = http(shared_broker, "/logout", user=None, method="POST", cookie=token)
    assert status == 200
    status, _, _ = http(shared_broker, "/api/whoami", user=None, cookie=token)
    assert status == 401


def test_login_refused(shared_broker):
    status, headers, body = http(shared_broker, "/login", user=None, method="POST",
                                 body=b"user=guest&password=wrong",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 401
    assert headers.get("Set-Cookie") is None


@pytest.mark.parametrize("path", ["/api/links", "/api/bridges", "/api/ha-replicators",
                                  "/api/cluster-members"])
def test_reserved_kinds_are_empty(shared_broker, path):
    status, body = get_json(shared_broker, path)
    assert status == 200 and body["total"] == "0" and body["objects"] == []


def test_overview_and_nodes(shared_broker):
    status, body = get_json(shared_broker, "/api/overview")
    assert status == 200
    o = body["overview"]
    assert o["broker"]["vhosts"] == ["/"]
    assert int(o["exchanges"]) >= 7
    status, body = get_json(shared_broker, "/api/nodes")
    assert status == 200 and body["total"] == "1"
    node = body["objects"][0]["broker"]["node"]
    status, body = get_json(shared_broker, "/api/nodes/" + node)
    assert status == 200 and body["objects"][0]["broker"]["node"] == node


def test_queue_paging_filter_sort(shared_broker):
    names = ["page-%03d" % i for i in range(250)]
    declare(shared_broker, names)
    publish(shared_broker, "page-007", 5)
    publish(shared_broker, "page-123", 3)
    status, body = get_json(shared_broker, "/api/queues?pattern=page-*&page_size=100&page=3")
    assert status == 200
    assert body["total"] == "250" and body["page"] == 3 and body["page_count"] == 3
    got = [o["queue"]["name"] for o in body["objects"]]
    assert got == names[200:]
    # filter= is a substring; pattern= a shell pattern.
    status, body = get_json(shared_broker, "/api/queues?filter=age-12")
    assert sorted(o["queue"]["name"] for o in body["objects"]) == \
        ["page-%03d" % i for i in range(120, 130)]
    status, body = get_json(shared_broker,
                            "/api/queues?pattern=page-*&sort=messages&sort_reverse=true&page_size=2")
    assert [(o["queue"]["name"], o["queue"]["messages"]) for o in body["objects"]] == \
        [("page-007", "5"), ("page-123", "3")]
    status, body = get_json(shared_broker, "/api/queues?sort=colour")
    assert status == 400 and "unknown sort key" in body["error"]
    status, body = get_json(shared_broker, "/api/queues?page=x")
    assert status == 400
    status, body = get_json(shared_broker, "/api/queues?page_size=5000&pattern=page-*")
    assert status == 200 and body["page_size"] == 1000 and len(body["objects"]) == 250


def test_queue_item_consumers_bindings(shared_broker, connect):
    c = connect(shared_broker)
    ch = c.channel()
    ch.queue_declare("item q")  # A space: the path is percent-encoded.
    ch.exchange_declare("item-x", "direct")
    ch.queue_bind("item q", "item-x", "k1")
    ch.basic_publish("", "item q", b"hello")
    ch.basic_consume("item q", lambda *a: None, consumer_tag="tag-1")
    helpers.wait_until(lambda: get_json(shared_broker, "/api/queues/%2F/item%20q")[1]
                       ["objects"][0]["queue"]["consumers"] == "1", 5)
    status, body = get_json(shared_broker, "/api/queues/%2F/item%20q")
    q = body["objects"][0]["queue"]
    assert q["name"] == "item q" and q["stats"]["published"] == "1"
    status, body = get_json(shared_broker, "/api/queues/%2F/item%20q/consumers")
    assert [o["consumer"]["tag"] for o in body["objects"]] == ["tag-1"]
    status, body = get_json(shared_broker, "/api/queues/%2F/item%20q/bindings")
    assert [(o["binding"]["source"], o["binding"]["routing_key"]) for o in body["objects"]] \
        == [("item-x", "k1")]
    status, body = get_json(shared_broker, "/api/exchanges/%2F/item-x")
    assert status == 200 and body["objects"][0]["exchange"]["bindings"] == "1"
    status, body = get_json(shared_broker, "/api/exchanges/%2F/amq.default")
    assert status == 200 and body["objects"][0]["exchange"]["name"] == ""
    status, body = get_json(shared_broker, "/api/connections")
    conns = [o["connection"] for o in body["objects"]]
    assert conns
    status, body = get_json(shared_broker, "/api/connections/%s" % conns[0]["id"])
    assert status == 200 and body["objects"][0]["connection"]["id"] == conns[0]["id"]
    status, body = get_json(shared_broker, "/api/channels")
    assert status == 200 and int(body["total"]) >= 1
    status, body = get_json(shared_broker, "/api/consumers")
    assert "tag-1" in [o["consumer"]["tag"] for o in body["objects"]]


@pytest.mark.parametrize("path,text", [
    ("/api/queues/%2F/no-such-queue", "no queue 'no-such-queue'"),
    ("/api/exchanges/%2F/no-such-exchange", "no exchange"),
    ("/api/queues?vhost=nowhere", "no vhost 'nowhere'"),
    ("/api/vhosts/nowhere", "no vhost"),
    ("/api/connections/987654", "no connection 987654"),
    ("/api/users/nobody", "no user 'nobody'"),
    ("/api/frobs", "no API route"),
    ("/api/queues/%2F/x/frobs", "no API route"),
])
def test_not_found(shared_broker, path, text):
    status, body = get_json(shared_broker, path)
    assert status == 404, body
    assert body["status"] == 404 and text in body["error"]


def test_static_files(shared_broker):
    status, headers, body = http(shared_broker, "/", user=None)
    assert status == 200, "the page was not built: %r" % body[:300]
    assert headers["Content-Type"].startswith("text/html")
    assert b'<div id="app">' in body
    status, _, _ = http(shared_broker, "/no-such-file.js", user=None)
    assert status == 404
    status, _, _ = http(shared_broker, "/../../etc/passwd", user=None)
    assert status in (400, 404)
    status, _, _ = http(shared_broker, "/", user=None, method="POST", body=b"")
    assert status == 405


def test_queue_peek(shared_broker):
    q = "peek-" + helpers.uniq()
    declare(shared_broker, [q])
    publish(shared_broker, q, 3, size=4)
    status, body = get_json(shared_broker, "/api/queues/%2F/" + q + "/peek?count=2")
    assert status == 200, body
    assert int(body["message_count"]) == 3 and len(body["messages"]) == 2
    assert base64.b64decode(body["messages"][0]["body"]) == b"xxxx"
    status, body = get_json(shared_broker, "/api/queues/%2F/" + q + "/peek?count=x")
    assert status == 400
    status, body = get_json(shared_broker, "/api/queues/%2F/nope-" + q + "/peek")
    assert status == 404
    # Peeking took nothing.
    status, body = get_json(shared_broker, "/api/queues/%2F/" + q)
    assert int(body["objects"][0]["queue"]["messages_ready"]) == 3


def test_actors(shared_broker, connect):
    c = connect(shared_broker)
    ch = c.channel()
    ch.queue_declare("actor-q")
    for _ in range(4):
        ch.basic_publish("", "actor-q", b"m")
    helpers.wait_until(lambda: get_json(shared_broker, "/api/queues/%2F/actor-q")[1]
                       ["objects"][0]["queue"]["messages"] == "4", 5)
    status, body = get_json(shared_broker, "/api/actors?pattern=actor-q")
    assert status == 200
    [a] = [o["actor"] for o in body["objects"]]
    assert a["kind"] == "queue" and a["state"] == "running" and a["messages"] == "4"
    assert a["in_total"] == "4" and "mailbox" in a["measured"] and int(a["id"]) > 0
    status, body = get_json(shared_broker, "/api/actors?page_size=1000")
    kinds = {o["actor"]["kind"] for o in body["objects"]}
    assert {"vhost", "exchange", "queue", "connection", "management", "store"} <= kinds
    assert int(body["total"]) == len(body["objects"])
    status, body = get_json(shared_broker, "/api/actors?sort=messages&sort_reverse=1&page_size=1"
                            "&pattern=actor-*")
    assert body["objects"][0]["actor"]["name"] == "actor-q"
    status, body = get_json(shared_broker, "/api/actors?sort=kind&page_size=1000")
    ks = [o["actor"]["kind"] for o in body["objects"]]
    assert ks == sorted(ks)


def test_generic_request_and_admin_rule(make_broker):
    users = make_broker(start=False).workdir / "users"
    users.parent.mkdir(parents=True, exist_ok=True)
    users.write_text("boss:%s:administrator\nviewer:%s\n"
                     % (password_hash("b0ss"), password_hash("v1ew")))
    b = make_broker(args=["--users-file", str(users)])
    req = json.dumps({"method": "create", "kind": "queue",
                      "queue": {"name": "made-by-http", "durable": True}}).encode()
    ct = {"Content-Type": "application/json"}
    status, _, body = http(b, "/api/request", user="viewer", password="v1ew", method="POST",
                           body=req, headers=ct)
    assert status == 403, body
    assert "administrator" in json.loads(body)["error"]
    status, _, body = http(b, "/api/request", user="boss", password="b0ss", method="POST",
                           body=req, headers=ct)
    assert status == 201, body
    status, body = get_json(b, "/api/queues/%2F/made-by-http", user="viewer", password="v1ew")
    assert status == 200 and body["objects"][0]["queue"]["durable"] is True
    status, _, _ = http(b, "/api/request", user="boss", password="b0ss", method="POST",
                        body=req, headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _, _ = http(b, "/api/queues", user="boss", password="b0ss", method="DELETE")
    assert status == 405
    # The built-in guest does not exist with a users file.
    status, _, _ = http(b, "/api/overview")
    assert status == 401


@pytest.mark.broker_args("--auth", "no")
def test_auth_off_needs_no_credentials(broker):
    status, body = get_json(broker, "/api/whoami", user=None)
    assert status == 200 and body["auth"] is False


# -- WebSocket (RFC 6455, by hand: Debian's curl has no ws) ----------------------

def ws_connect(broker, cookie=None, basic=True):
    s = socket.create_connection(("127.0.0.1", broker.inspector_port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /ws HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    if basic:
        lines.append("Authorization: Basic " + base64.b64encode(b"guest:guest").decode())
    if cookie:
        lines.append("Cookie: " + cookie)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1])
    return s, status, head.split(b"\r\n\r\n", 1)[1]


def ws_send_text(s, text):
    data = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(data) < 126:
        header += bytes([0x80 | len(data)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
    s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def ws_read_text(s, buf):
    """Reads one text message (joining continuation frames); returns it and
    the bytes after it."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError("socket closed")
            buf += chunk
    parts = []
    while True:
        need(2)
        fin = buf[0] & 0x80
        length = buf[1] & 0x7F
        off = 2
        if length == 126:
            need(4)
            length = struct.unpack("!H", buf[2:4])[0]
            off = 4
        elif length == 127:
            need(10)
            length = struct.unpack("!Q", buf[2:10])[0]
            off = 10
        need(off + length)
        parts.append(buf[off:off + length])
        buf = buf[off + length:]
        if fin:
            return b"".join(parts).decode(), buf


def test_websocket_updates(shared_broker):
    s, status, rest = ws_connect(shared_broker, basic=False)
    s.close()
    assert status == 401
    s, status, buf = ws_connect(shared_broker)
    try:
        assert status == 101
        ws_send_text(s, "/api/overview\n/api/queues/%2F/ws-q\n/api/frobs")
        declare(shared_broker, ["ws-q"])
        seen = []
        end = time.monotonic() + 10
        while time.monotonic() < end:
            text, buf = ws_read_text(s, buf)
            msg = json.loads(text)
            assert msg["type"] == "update"
            seen.append(msg)
            r = msg["results"]
            if "/api/overview" in r and r.get("/api/queues/%2F/ws-q", {}).get("status") == 200:
                break
        r = seen[-1]["results"]
        assert r["/api/overview"]["status"] == 200
        assert r["/api/queues/%2F/ws-q"]["body"]["objects"][0]["queue"]["name"] == "ws-q"
        assert r["/api/frobs"]["status"] == 404
        events = [e for m in seen for e in m["events"]]
        assert any(e["kind"] == "queue" and e["action"] == "created" and e["name"] == "ws-q"
                   for e in events), events
    finally:
        s.close()
