"""Runs js/amqplib.test.js (node's built-in test runner) against flotillad.

Node runs the whole file once (TAP output); each JavaScript test then becomes
one pytest test that passes or fails with node's diagnostics, so failures are
reported by name."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
JS_TEST = JS_DIR / "amqplib.test.js"


def js_test_names():
    text = JS_TEST.read_text()
    return re.findall(r"^test\(\s*'((?:[^'\\]|\\.)*)'", text, re.M)


def node_problem():
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS_DIR / "node_modules" / "amqplib").is_dir():
        return ("amqplib is not installed: run scripts/install-deps.sh "
                "(or npm install in test/integration/js)")
    return None


def parse_tap(out):
    """{test name: (ok, diagnostic text)} from node's top-level TAP lines."""
    results = {}
    lines = out.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(not ok|ok) \d+ - (.*?)(?: # (?:SKIP|TODO).*)?$", lines[i])
        i += 1
        if not m:
            continue
        name = m.group(2).replace("\\#", "#").replace("\\\\", "\\")
        diag = []
        if i < len(lines) and lines[i].strip() == "---":
            while i < len(lines) and lines[i].strip() != "...":
                diag.append(lines[i])
                i += 1
        results[name] = (m.group(1) == "ok", "\n".join(diag))
    return results


@pytest.fixture(scope="module")
def js_run(shared_broker):
    problem = node_problem()
    if problem:
        return {"problem": problem}
    env = dict(os.environ, AMQP_URL=shared_broker.url, NODE_NO_WARNINGS="1")
    cmd = ["node", "--test", "--test-reporter=tap", str(JS_TEST)]
    try:
        p = subprocess.run(cmd, cwd=str(JS_DIR), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=240)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        return {"problem": "node --test did not finish in 240 s:\n" + out}
    out = p.stdout.decode("utf-8", "replace")
    return {"returncode": p.returncode, "output": out, "results": parse_tap(out)}


def test_js_tests_found():
    names = js_test_names()
    assert len(names) >= 10, names
    assert len(set(names)) == len(names), "duplicate JavaScript test names"


def test_parse_tap():
    sample = ("TAP version 13\n# Subtest: a\nok 1 - a\n  ---\n  duration_ms: 1\n  ...\n"
              "# Subtest: b: c\nnot ok 2 - b: c\n  ---\n  error: 'boom'\n  ...\n1..2\n")
    r = parse_tap(sample)
    assert r["a"][0] is True
    assert r["b: c"][0] is False and "boom" in r["b: c"][1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", js_test_names())
def test_amqplib(js_run, name):
    assert "problem" not in js_run, js_run.get("problem")
    results = js_run["results"]
    assert name in results, ("JavaScript test %r did not report (node exit %d):\n%s"
                             % (name, js_run["returncode"], js_run["output"]))
    ok, diag = results[name]
    assert ok, "JavaScript test %r failed:\n%s" % (name, diag)


def test_node_exit_code(js_run):
    assert "problem" not in js_run, js_run.get("problem")
    assert js_run["returncode"] == 0, "node --test exit %d:\n%s" % (
        js_run["returncode"], js_run["output"])
