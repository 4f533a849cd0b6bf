"""systemd integration: the notify protocol for real, the watchdog's honesty, SIGTERM, the unit file."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from app.server import Supervisor
from app.sources import Source
from app.systemd import Notifier, log_handler
from tests.support.notify import NotifySocket
from tests.support.server import REPO, InProcessServer, Recorder, ServerProcess, wait_until

UNIT = REPO / "systemd" / "livedash.service"

ONE_RANDOM = """
[[channels]]
name = "random"
source = "random"
rate_hz = 10
"""

RANDOM_AND_MISSING_GPIO = ONE_RANDOM + """
[[channels]]
name = "light"
source = "light"
pin_factory = "lgpio"
"""


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_ready_only_once_listening_then_status_and_watchdog(tmp_path, notify, mode):
    server = ServerProcess(tmp_path, RANDOM_AND_MISSING_GPIO, args=("--async-mode", mode),
                           env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    probe = {}

    def at_ready(fields):
        if fields.get("READY") == "1":
            with socket.socket() as s:
                probe["connect"] = s.connect_ex(("127.0.0.1", server.port))

    notify.on_message = at_ready
    with server:
        wait_until(lambda: "connect" in probe, what="READY=1")
        assert probe["connect"] == 0, "READY=1 came before the port accepted connections"
        ready = [f for _, f in notify.messages if "READY" in f][0]
        assert "STATUS" in ready

        wait_until(lambda: any("channel light: fault" in s for s in notify.statuses()), what="the fault in STATUS")
        assert "channel light: fault: ModuleNotFoundError: No module named 'lgpio'; 1 channel ok, 0 clients" in notify.statuses()

        with Recorder(server.url), Recorder(server.url):
            wait_until(lambda: notify.statuses()[-1].endswith("1 channel ok, 2 clients"), what="STATUS with 2 clients")
        wait_until(lambda: notify.statuses()[-1].endswith("1 channel ok, 0 clients"), what="STATUS back to 0 clients")

        wait_until(lambda: len(notify.with_key("WATCHDOG")) >= 4, what="watchdog pings")  # their pace: below

        if mode == "eventlet":  # the whole event loop frozen: no pings until it runs again
            server.process.send_signal(signal.SIGSTOP)
            time.sleep(1.5)
            frozen_at = time.monotonic()
            server.process.send_signal(signal.SIGCONT)
            assert not [at for at, _ in notify.with_key("WATCHDOG") if frozen_at - 1.0 < at < frozen_at]
            wait_until(lambda: notify.with_key("WATCHDOG")[-1][0] > frozen_at, what="pings after SIGCONT")
    assert notify.with_key("STOPPING")


class Healthy:
    """What the supervisor asks of a Livedash, answering "all is alive" until told otherwise."""

    def __init__(self):
        self.problem_list = []

    def problems(self, now):
        return self.problem_list

    def status_line(self):
        return "1 channel ok, 0 clients"

    def save_history_if_due(self, now):
        pass


class Pings(Notifier):
    def __init__(self):
        super().__init__({"WATCHDOG_USEC": "1000000"})
        self.sent = []

    def send(self, *lines):
        self.sent.append(lines)


def test_the_watchdog_is_fed_at_half_its_interval_and_only_while_all_is_alive():
    """The main loop's pace, on the times it is given: WATCHDOG_USEC=1 s asks for a ping every 0.5 s."""
    livedash, notifier = Healthy(), Pings()
    supervisor = Supervisor(livedash, notifier)
    pinged = []
    for tick in range(1, 41):  # 10 s of 0.25 s ticks
        now = tick * 0.25
        livedash.problem_list = ["sampler a is stuck"] if 5.0 <= now < 7.0 else []
        before = len(notifier.sent)
        supervisor.tick(now)
        if ("WATCHDOG=1",) in notifier.sent[before:]:
            pinged.append(now)
    assert pinged == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0]
    assert ("STATUS=sampler a is stuck",) in notifier.sent


def test_no_watchdog_when_not_asked(tmp_path, notify):
    with ServerProcess(tmp_path, ONE_RANDOM, env={"NOTIFY_SOCKET": notify.path}):
        wait_until(lambda: notify.with_key("READY"), what="READY=1")
        time.sleep(1.0)
    assert notify.with_key("WATCHDOG") == []


@pytest.fixture
def notify_env(notify, monkeypatch):
    """sd_notify reads NOTIFY_SOCKET from the process's environment."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    return notify


def supervise(server, notify_path, ticks=10):
    """Run the main loop's supervisor against an in-process server for some ticks.

    The watchdog interval is a microsecond, so every healthy tick pings and the pings are
    counted exactly, whatever the machine's load: a tick with a problem is a tick without one."""
    notifier = Notifier({"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "2"})
    supervisor = Supervisor(server.livedash, notifier)
    for _ in range(ticks):
        supervisor.tick(time.monotonic())
        time.sleep(0.02)
    return supervisor


def pings(notify, after=0.0):
    return [at for at, _ in notify.with_key("WATCHDOG") if at > after]


def test_a_stuck_sampler_stops_the_watchdog_but_a_faulty_sensor_does_not(tmp_path, notify_env):
    notify = notify_env
    quick = RANDOM_AND_MISSING_GPIO.replace("rate_hz = 10\n", "rate_hz = 10\ntimeout_s = 0.25\n", 1)  # seen sooner
    with InProcessServer(quick, tmp_path) as server:
        wait_until(lambda: server.livedash.hub.channels["light"].status == "fault", what="the missing sensor's fault")
        supervise(server, notify.path, ticks=10)
        wait_until(lambda: len(pings(notify)) == 10, what="a ping per tick: a sensor in fault is no reason to restart")

        sampler = server.livedash.samplers[0]
        hang = threading.Event()
        sampler._report = lambda *args: hang.wait()  # the sampler's own loop now blocks
        wait_until(lambda: server.livedash.problems(time.monotonic()), timeout=30, what="the sampler to be seen stuck")
        assert server.livedash.problems(time.monotonic()) == ["sampler random is stuck"]
        started = time.monotonic()
        supervisor = supervise(server, notify.path, ticks=10)
        assert supervisor.reported == ["sampler random is stuck"]
        wait_until(lambda: notify.statuses()[-1] == "sampler random is stuck", what="STATUS=")
        assert pings(notify, started) == []
        hang.set()


def test_a_dead_sampler_stops_the_watchdog(tmp_path, notify_env):
    """A BaseException in a read ends the sampler's thread: that is a sampler stuck for good."""
    notify = notify_env
    with InProcessServer(ONE_RANDOM, tmp_path) as server:
        sampler = server.livedash.samplers[0]
        wait_until(lambda: sampler._source is not None, what="the sampler to open its source")

        def read():
            raise SystemExit("a library called sys.exit()")

        sampler._source = Source(read)
        wait_until(lambda: not sampler._thread.is_alive(), what="the sampler thread to end")
        problem = "sampler random has died (SystemExit: a library called sys.exit())"
        assert server.livedash.problems(time.monotonic()) == [problem]
        channel = server.livedash.hub.channels["random"]  # the hub takes the sampler's last word on its own thread
        wait_until(lambda: channel.reason == "sampler died: SystemExit: a library called sys.exit()",
                   what="the channel's reason")
        started = time.monotonic()
        supervise(server, notify.path, ticks=5)
        wait_until(lambda: notify.statuses()[-1] == problem, what="STATUS=")
        assert pings(notify, started) == []


def test_a_stuck_hub_stops_the_watchdog(tmp_path, notify_env):
    notify = notify_env
    with InProcessServer(ONE_RANDOM, tmp_path) as server:
        hub = server.livedash.hub
        hang = threading.Event()
        take = hub._take
        hub._take = lambda *item: (hang.wait(), take(*item))
        wait_until(lambda: server.livedash.problems(time.monotonic()), timeout=30, what="the hub to be seen stuck")
        started = time.monotonic()
        supervise(server, notify.path, ticks=5)
        wait_until(lambda: notify.statuses()[-1].startswith("hub is stuck with "), what="STATUS=")
        assert pings(notify, started) == []
        hang.set()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the hub's, on purpose
def test_a_dead_hub_stops_the_watchdog(tmp_path, notify_env):
    notify = notify_env
    with InProcessServer(ONE_RANDOM, tmp_path) as server:
        def broken(*item):
            raise RuntimeError("a bug in the hub")

        server.livedash.hub._take = broken
        wait_until(lambda: "hub has stopped" in server.livedash.problems(time.monotonic()), what="the pump to end")
        started = time.monotonic()
        supervise(server, notify.path, ticks=5)
        assert pings(notify, started) == []


@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_sigterm_exits_0_saves_history_and_says_goodbye(tmp_path, mode):
    server = ServerProcess(tmp_path, ONE_RANDOM, args=("--async-mode", mode)).start()
    client = Recorder(server.url).connect()
    wait_until(lambda: len(client.samples("random")) >= 5, what="samples")
    assert server.stop(signal.SIGTERM, timeout=20) == 0  # within the unit's TimeoutStopSec=20, or it fails
    wait_until(lambda: not client.client.connected, what="the client to be disconnected")
    assert client.of("bye") == [{"reason": "server stopping"}]
    saved = json.loads((server.state_dir / "history.json").read_text())
    assert saved["clean"] is True
    last_seen = client.samples("random")[-1]["seq"]
    assert saved["channels"]["random"]["seq"] >= last_seen
    assert oct((server.state_dir / "history.json").stat().st_mode & 0o777) == "0o600"

    # The next start resumes the numbering, so a page that stayed open sees no repeat.
    with server:
        again = Recorder(server.url).connect()
        wait_until(lambda: again.samples("random"), what="samples after the restart")
        history = again.of("history")[0]["samples"]
        assert history[0]["seq"] == 1 and history[-1]["seq"] >= saved["channels"]["random"]["seq"]
        assert again.samples("random")[0]["seq"] > saved["channels"]["random"]["seq"]
        again.disconnect()


def test_a_corrupt_history_file_is_set_aside(tmp_path):
    server = ServerProcess(tmp_path, ONE_RANDOM)
    server.state_dir.mkdir(mode=0o700)
    (server.state_dir / "history.json").write_text('{"version": 1, "chan')
    with server:
        assert server.health()["status"] == "ok"
    assert "could not be read" in server.output()
    assert list(server.state_dir.glob("history.json.corrupt-*"))


def test_journal_handler_sends_structured_fields(monkeypatch):
    st = os.fstat(2)
    handler = log_handler({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    from systemd.journal import JournalHandler

    assert isinstance(handler, JournalHandler)
    sent = []
    handler.send = lambda *message, **fields: sent.append((message[0], fields))
    logger = logging.getLogger("test.journal")
    logger.addHandler(handler)
    logger.warning("channel %s: fault: %s", "distance", "no echo", extra={"CHANNEL": "distance"})
    logger.removeHandler(handler)
    message, fields = sent[0]
    assert message == "channel distance: fault: no echo"
    assert fields["CHANNEL"] == "distance" and fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "livedash"
    assert isinstance(log_handler({}), logging.StreamHandler), "plain stderr off systemd"


def systemd_root(tmp_path: Path) -> Path:
    """A root with the host's systemd units and the paths the unit names, for `systemd-analyze --root`."""
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    program = root / "opt/livedash/venv/bin/livedash"
    program.parent.mkdir(parents=True)
    shutil.copy("/usr/bin/true", program)
    (root / "etc/systemd/system").mkdir(parents=True)
    return root


def test_unit_file_verifies_and_scores(tmp_path):
    root = systemd_root(tmp_path)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    verify = subprocess.run(["systemd-analyze", "verify", f"--root={root}", UNIT.name],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}", UNIT.name],
                              capture_output=True, text=True)
    score_line = security.stdout.strip().splitlines()[-1]
    print(f"\nsystemd-analyze security: {score_line}")
    score = float(score_line.split(":")[1].split()[0])
    assert score <= 3.0, score_line
