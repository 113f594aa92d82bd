"""Federation at the edges (docs/federation.md): connectors declared in
flotillad's config file, TLS on the fabric, `flotilla link test` and
management requests that cross routes."""

import subprocess
import time

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
