"""The web inspector in a real browser: Debian's chromium, headless, driven
by npm's playwright-core (js/inspector.browser.mjs). Logs in, creates a queue
and publishes through AMQP, and checks that the page shows the queue and its
depth within two seconds. The screenshots are test artifacts (in the test's
tmp dir); with FLOTILLA_UPDATE_SCREENSHOTS=1 they are also copied to
docs/images/ for docs/inspector.md.

The topology page (js/topology.browser.mjs) is checked against two real
brokers and a federation route between them."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pika
import pytest

from test_federation import addr, bridges, cli, mgmt, route_with_traffic

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js"
DOCS_IMAGES = HERE.parent.parent / "docs" / "images"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def problem():
    if shutil.which("node") is None:
        return "node is not installed (scripts/install-deps.sh)"
    if not os.access(CHROMIUM, os.X_OK):
        return "%s is missing: apt-get install chromium (scripts/install-deps.sh)" % CHROMIUM
    for pkg in ("playwright-core", "amqplib"):
        if not (JS_DIR / "node_modules" / pkg).is_dir():
            return "%s is not installed: npm install in test/integration/js" % pkg
    return None


@pytest.mark.timeout(180)
def test_inspector_in_chromium(broker, tmp_path):
    p = problem()
    assert p is None, p
    code, out, steps = run_script("inspector.browser.mjs", {
        "INSPECTOR_URL": broker.inspector_url, "AMQP_URL": broker.url,
        "SHOT_DIR": str(tmp_path)})
    assert code == 0, "browser script failed:\n" + out
    for name in ("logged in", "websocket live", "queue appeared", "depth changed in list",
                 "depth changed on queue page", "actors view lists the queue",
                 "event log shows the queue", "topology drawn", "done"):
        assert name in steps, "step %r missing:\n%s" % (name, out)
    # The bar: the queue and its depth change show within two seconds.
    assert steps["queue appeared"]["ms"] <= 2000
    assert steps["depth changed in list"]["ms"] <= 2000
    assert steps["depth changed on queue page"]["ms"] <= 2000
    for shot in ("inspector.png", "inspector-queue.png"):
        data = (tmp_path / shot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000, shot
        if os.environ.get("FLOTILLA_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / shot, DOCS_IMAGES / shot)


def run_script(script, env, timeout=150):
    """Runs a browser script; returns (exit code, output, {step: record})."""
    run = subprocess.run(["node", str(JS_DIR / script)], cwd=str(JS_DIR),
                         env=dict(os.environ, CHROMIUM=CHROMIUM, NODE_NO_WARNINGS="1", **env),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = run.stdout.decode("utf-8", "replace")
    steps = {}
    for line in out.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "step" in rec:
            steps[rec["step"]] = rec
    return run.returncode, out, steps


@pytest.mark.timeout(180)
def test_topology_shows_remote_broker_and_link(make_broker, wait_until, tmp_path):
    p = problem()
    assert p is None, p
    src = make_broker(args=["--name", "topo-src"])
    dest = make_broker(args=["--name", "topo-dest"])
    # A route into dest pulled from src (the link lives on dest), 5 messages.
    route_with_traffic(dest, src, "topo", [b"m%d" % i for i in range(5)], wait_until)
    link = "127.0.0.1:%d" % src.port
    remote = mgmt(src, "overview")["overview"]["broker"]["node"]
    code, out, steps = run_script("topology.browser.mjs", {
        "INSPECTOR_URL": dest.inspector_url, "REMOTE_NODE": remote, "LINK_NAME": link,
        "LINK_STATE": "Operational", "MESSAGES": "5", "SHOT_DIR": str(tmp_path)})
    assert code == 0, "browser script failed:\n" + out
    for name in ("logged in", "topology drawn", "remote broker node", "link edge",
                 "link messages", "done"):
        assert name in steps, "step %r missing:\n%s" % (name, out)
    # The source's page shows the export to dest (an edge towards dest).
    local = mgmt(dest, "overview")["overview"]["broker"]["node"]
    code, out, steps = run_script("topology.browser.mjs", {
        "INSPECTOR_URL": src.inspector_url, "REMOTE_NODE": local,
        "LINK_NAME": "exports to %s" % local, "LINK_STATE": "Operational",
        "EDGE_TO": local})
    assert code == 0, "browser script failed on the source:\n" + out
    # A push route (--src-local) from src: dest has no link of its own, the
    # edge comes from the source ("pushed by"), with what dest imported.
    cli("route", "add", addr(dest), addr(src), "amq.direct", "topo-push", "--src-local")
    dconn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", dest.port))
    dch = dconn.channel()
    dch.queue_declare("topo-push-in")
    dch.queue_bind("topo-push-in", "amq.direct", "topo-push")
    wait_until(lambda: [x["state"] for x in bridges(dest) if x.get("src_local")] == ["active"], 15)
    sconn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", src.port))
    sconn.channel().basic_publish("amq.direct", "topo-push", b"pushed")
    wait_until(lambda: dch.queue_declare("topo-push-in", passive=True).method.message_count == 1, 15)
    code, out, steps = run_script("topology.browser.mjs", {
        "INSPECTOR_URL": dest.inspector_url, "REMOTE_NODE": remote,
        "LINK_NAME": "pushed by %s" % remote, "LINK_STATE": "Operational", "MESSAGES": "1"})
    assert code == 0, "browser script failed on the push route's destination:\n" + out
    sconn.close()
    dconn.close()
