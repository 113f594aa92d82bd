"""Fixtures that run a real flotillad for the integration tests.

``Broker`` starts ``flotillad`` on an ephemeral port with its own data
directory and log file, and on teardown fails the test when the broker died
on its own, did not exit 0 on SIGTERM, or logged an ``ERROR`` line that the
test did not declare as expected (``@pytest.mark.allow_errors(regex, ...)``).

Fixtures:
  broker         a fresh broker per test (``@pytest.mark.broker_args(...)``
                 adds command line options)
  shared_broker  one broker per test module (``SHARED_BROKER_ARGS`` in the
                 module adds options); its log is checked after every test
  make_broker    factory for extra brokers with custom options
  connect        factory for pika BlockingConnections, closed at teardown
  conn, ch       a connection and channel on ``shared_broker``
  procs          register subprocess.Popen objects to kill at teardown
  wait_until     the ``helpers.wait_until`` function
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import helpers  # noqa: E402
from helpers import kill_process, popen  # noqa: E402

DEFAULT_FLOTILLAD = "/work/main/build/apps/flotillad"
# FLOTILLA_TEST_START_TIMEOUT raises it for slow builds (sanitizers, valgrind).
START_TIMEOUT = float(os.environ.get("FLOTILLA_TEST_START_TIMEOUT", "20"))
STOP_TIMEOUT = 15.0
DEFAULT_TEST_TIMEOUT = 60
ERROR_LINE = re.compile(r"\bERROR\b")

def flotillad_path():
    return os.environ.get("FLOTILLAD") or DEFAULT_FLOTILLAD


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


class BrokerError(AssertionError):
    pass


class Broker:
    """One flotillad process. Restartable; keeps its data dir and log across
    restarts (the port may change on restart since it binds port 0)."""

    def __init__(self, workdir, args=(), allowed_errors=(), name="flotillad",
                 start_timeout=START_TIMEOUT):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path = self.workdir / "flotillad.log"
        self.stdout_path = self.workdir / "flotillad.stdout"
        self.args = [str(a) for a in args]
        self.allowed_errors = [re.compile(p) for p in allowed_errors]
        self.name = name
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.inspector_port = None
        self.fabric_port = None
        self.listening = {}
        self.problems = []
        self._expect_exit = False
        self._log_offset = 0
        self._reader = None

    # -- properties ---------------------------------------------------------
    @property
    def host(self):
        return "127.0.0.1"

    @property
    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d" % self.port

    @property
    def inspector_url(self):
        """http://127.0.0.1:PORT of the web inspector (--inspector-port 0)."""
        return "http://127.0.0.1:%d" % self.inspector_port

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def allow_errors(self, *patterns):
        self.allowed_errors.extend(re.compile(p) for p in patterns)

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def describe(self):
        return "%s (pid %s, port %s, log %s)" % (self.name, self.pid, self.port, self.log_path)

    # -- lifecycle ------------------------------------------------------------
    def command(self):
        return [flotillad_path(), "--port", "0", "--interface", "127.0.0.1",
                "--data-dir", str(self.data_dir), "--inspector-port", "0",
                "--log-output", "stderr"] + self.args

    def start(self):
        binary = flotillad_path()
        if not os.access(binary, os.X_OK):
            raise BrokerError("flotillad binary not found or not executable: %s "
                              "(set FLOTILLAD)" % binary)
        if self.running():
            raise BrokerError("%s already running" % self.describe())
        self._expect_exit = False
        self.port = None
        self.inspector_port = None
        self.fabric_port = None
        self.listening = {}
        found = threading.Event()
        log = open(self.log_path, "ab")
        with open(self.log_path, "ab") as marker:
            marker.write(("---- test harness: starting %s\n"
                          % " ".join(self.command())).encode())
        try:
            self.proc = popen(self.command(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=log,
                              cwd=str(self.workdir))
        finally:
            log.close()

        def read_stdout(proc, found):
            with open(self.stdout_path, "ab") as out:
                for raw in iter(proc.stdout.readline, b""):
                    out.write(raw)
                    out.flush()
                    line = raw.decode("utf-8", "replace").strip()
                    # flotillad prints "inspector port=N" just before
                    # "listening port=N".
                    if not found.is_set() and line.startswith("inspector "):
                        m = re.search(r"\bport=(\d+)", line)
                        if m:
                            self.inspector_port = int(m.group(1))
                    # ... and "fabric port=N" (federation) between them.
                    if not found.is_set() and line.startswith("fabric "):
                        m = re.search(r"\bport=(\d+)", line)
                        if m:
                            self.fabric_port = int(m.group(1))
                    if not found.is_set() and line.startswith("listening "):
                        fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
                        if fields.get("port", "").isdigit():
                            self.listening = fields
                            self.port = int(fields["port"])
                            found.set()
            proc.stdout.close()

        self._reader = threading.Thread(target=read_stdout, args=(self.proc, found),
                                        daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._expect_exit = True
                raise BrokerError("flotillad exited with code %s before printing "
                                  "'listening port=N'\nstdout: %s\nlog tail (%s):\n%s"
                                  % (code, _tail(self.stdout_path, 10), self.log_path,
                                     self.log_tail()))
            if time.monotonic() > deadline:
                self._expect_exit = True
                kill_process(self.proc)
                raise BrokerError("flotillad did not print 'listening port=N' within "
                                  "%.0fs\nstdout: %s\nlog tail (%s):\n%s"
                                  % (self.start_timeout, _tail(self.stdout_path, 10),
                                     self.log_path, self.log_tail()))
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, SIGKILL fallback. Returns the exit code. A SIGTERM
        that does not lead to exit code 0 within the timeout is recorded as a
        problem and reported at teardown."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            if not self._expect_exit:
                self._note_unexpected_exit()
            return self.proc.returncode
        self._expect_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.problems.append("%s did not exit within %.0fs of SIGTERM; killed"
                                 % (self.describe(), timeout))
            kill_process(self.proc)
            return self.proc.returncode
        if code != 0:
            self.problems.append("%s exited with code %s after SIGTERM (expected 0)"
                                 % (self.describe(), code))
        return code

    def kill(self):
        """SIGKILL (simulated crash). Not reported as a problem."""
        if self.proc is None:
            return None
        self._expect_exit = True
        kill_process(self.proc)
        return self.proc.returncode

    def restart(self, kill=False):
        if kill:
            self.kill()
        else:
            self.stop()
        if self._reader is not None:
            self._reader.join(5)
        return self.start()

    def _note_unexpected_exit(self):
        if self.proc is not None and self.proc.poll() is not None and not self._expect_exit:
            self._expect_exit = True
            self.problems.append("%s died unexpectedly with exit code %s"
                                 % (self.describe(), self.proc.returncode))

    # -- checks -------------------------------------------------------------
    def new_error_lines(self, extra_allowed=()):
        """ERROR lines logged since the last call that no allow pattern matches."""
        allowed = self.allowed_errors + [re.compile(p) for p in extra_allowed]
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                data = f.read()
        except OSError:
            return []
        # Only consume whole lines; a half-written last line is checked next time.
        cut = data.rfind(b"\n") + 1
        if self.proc is None or self.proc.poll() is not None:
            cut = len(data)
        self._log_offset += cut
        bad = []
        for line in data[:cut].decode("utf-8", "replace").splitlines():
            if ERROR_LINE.search(line) and not any(p.search(line) for p in allowed):
                bad.append(line)
        return bad

    def check(self, extra_allowed=()):
        """Problems so far (process death, bad exit, unexpected ERROR lines).
        Clears them so each is reported once."""
        self._note_unexpected_exit()
        problems, self.problems = self.problems, []
        bad = self.new_error_lines(extra_allowed)
        if bad:
            problems.append("unexpected ERROR lines in %s:\n  %s"
                            % (self.log_path, "\n  ".join(bad[:30])))
        return problems

    def finish(self, extra_allowed=()):
        """Stop the broker (if running) and return all problems."""
        if self.running():
            self.stop()
        else:
            self._note_unexpected_exit()
        if self._reader is not None:
            self._reader.join(5)
        return self.check(extra_allowed)


def _marker_args(node, name):
    out = []
    for m in node.iter_markers(name):
        out.extend(m.args)
    return out


def _fail_problems(problems, broker):
    if problems:
        pytest.fail("broker problems:\n" + "\n".join(problems)
                    + "\n---- log tail (%s):\n%s" % (broker.log_path, broker.log_tail()),
                    pytrace=False)


# ---------------------------------------------------------------------------
# pytest configuration
# ---------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit "
                            "(default %d s)" % DEFAULT_TEST_TIMEOUT)
    config.addinivalue_line("markers", "allow_errors(*regex): ERROR log lines matching "
                            "any of these are expected")
    config.addinivalue_line("markers", "broker_args(*args): extra flotillad options for "
                            "the function-scoped broker fixture")


class TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    m = item.get_closest_marker("timeout")
    seconds = int(m.args[0]) if m else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TestTimeout("test did not finish within %d s" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A failed test shows the log tails of the brokers it started: a failure
    # seen only in CI is explained by its own report.
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for b in getattr(item, "flotilla_brokers", []):
            rep.sections.append(("log tail of %s (%s)" % (b.name, b.log_path),
                                 b.log_tail(60)))


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture
def wait_until():
    return helpers.wait_until


@pytest.fixture
def procs():
    """List to append Popen objects to; all are killed at teardown."""
    started = []
    yield started
    for p in started:
        kill_process(p)


@pytest.fixture
def make_broker(request, tmp_path):
    """Factory: make_broker(args=(), allowed_errors=(), start=True) -> Broker."""
    made = []
    request.node.flotilla_brokers = made
    allowed = _marker_args(request.node, "allow_errors")

    def factory(args=(), allowed_errors=(), start=True, name=None):
        n = len(made)
        b = Broker(tmp_path / ("broker%d" % n), args=args,
                   allowed_errors=list(allowed_errors) + allowed,
                   name=name or "flotillad#%d" % n)
        made.append(b)
        if start:
            b.start()
        return b

    yield factory
    problems = []
    for b in made:
        problems.extend(b.finish())
    if problems:
        pytest.fail("broker problems:\n" + "\n".join(problems)
                    + "".join("\n---- log tail (%s):\n%s" % (b.log_path, b.log_tail())
                              for b in made), pytrace=False)


@pytest.fixture
def broker(request, tmp_path):
    b = Broker(tmp_path / "broker", args=_marker_args(request.node, "broker_args"),
               allowed_errors=_marker_args(request.node, "allow_errors"))
    request.node.flotilla_brokers = [b]
    try:
        b.start()
        yield b
    finally:
        problems = b.finish()
    _fail_problems(problems, b)


@pytest.fixture(scope="module")
def shared_broker(request, tmp_path_factory):
    name = request.module.__name__.rsplit(".", 1)[-1]
    b = Broker(tmp_path_factory.mktemp(name), args=getattr(request.module,
                                                            "SHARED_BROKER_ARGS", ()),
               name="flotillad[%s]" % name)
    try:
        b.start()
        yield b
    finally:
        problems = b.finish()
    _fail_problems(problems, b)


@pytest.fixture(autouse=True)
def _check_shared_broker(request):
    """After each test that used shared_broker: report its death or new
    unexpected ERROR lines against that test, and restart it if it died."""
    if "shared_broker" not in request.fixturenames:
        yield
        return
    b = request.getfixturevalue("shared_broker")
    yield
    problems = b.check(_marker_args(request.node, "allow_errors"))
    if not b.running():
        b.start()
    _fail_problems(problems, b)


@pytest.fixture
def connect():
    """connect(broker_or_port, **pika_params) -> pika.BlockingConnection;
    every connection is closed at teardown."""
    opened = []

    def factory(target, **kw):
        port = target if isinstance(target, int) else target.port
        c = helpers.connect(port, **kw)
        opened.append(c)
        return c

    yield factory
    for c in opened:
        helpers.close_quietly(c)


@pytest.fixture
def conn(shared_broker, connect):
    return connect(shared_broker)


@pytest.fixture
def ch(conn):
    return conn.channel()
