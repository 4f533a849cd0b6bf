"""The fan-out benchmark: N real Socket.IO clients over WebSocket against livedash, against the
tutorial's threading server and against Node.js socket.io (``bench/node``), on this machine, in
the same run with the same clients and rate. ``bench/run`` runs it; see the README.

One asyncio process (uvloop when installed) plays every client (``bench/loadgen.py``). For each
scenario and server it measures, over a fixed window after a warm-up: samples delivered
against expected (by seq, per client and channel: losses and duplicates), latency (arrival
minus the sample's own server time ``t``), disconnects, the server's CPU share (of one core)
and peak RSS from /proc, and the generator's own CPU and event-loop lag (if those are high
the generator, not the server, is the limit). Then idle CPU and start-up time per server.

Every server is a subprocess in its own session on a free loopback port, killed at the end
whatever happens (Ctrl-C and SIGTERM included). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .loadgen import Fleet, LagProbe, StalledClient, Tally, tcp_queues
from .mqtt import line as mqtt_line, mqtt_cost

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
# The servers run from a venv with only what the Pi gets (requirements.txt): the generator's
# packages (aiohttp among them) would otherwise be imported by python-engineio and inflate RSS.
SERVER_PYTHON = os.environ.get("BENCH_SERVER_PYTHON") or str(REPO / ".venv-server" / "bin" / "python")
TICK = os.sysconf("SC_CLK_TCK")
FILES = 20000  # open files wanted, for the generator and each server (2000 clients and then some)

NODE = "node"  # a limit of NODE: what the Node.js peer measured in the same scenario of this run
TARGETS = [  # (scenario, metric, limit, "min" or "max", text)
    ("fan-out 1000", "delivered_pct", 99.9, "min", "1000 clients: >= 99.9 % delivered"),
    ("fan-out 1000", "p99_ms", NODE, "max", "1000 clients: p99 <= Node's"),
    ("fan-out 1000", "cpu_pct", NODE, "max", "1000 clients: server CPU <= Node's"),
    ("fan-out 2000", "delivered_pct", 99.0, "min", "2000 clients: >= 99 % delivered"),
    ("fan-out 2000", "p99_ms", 200.0, "max", "2000 clients: p99 <= 200 ms"),
    ("fan-out 100", "cpu_pct", NODE, "max", "100 clients: server CPU <= Node's"),
    ("fan-out 10", "peak_rss_mb", 60.0, "max", "10 clients: peak RSS <= 60 MB"),
    ("fan-out 1000", "peak_rss_mb", 150.0, "max", "1000 clients: peak RSS <= 150 MB"),
    ("idle", "idle_cpu_pct", 1.0, "max", "idle (one 1 Hz channel): CPU < 1 %"),
    ("start", "start_max_s", 2.0, "max", "start to the first GET / < 2 s"),
]


@dataclass
class Scenario:
    name: str
    clients: int
    rate_hz: float
    stalled: int = 0  # extra clients that join and then never read


@dataclass
class Result:
    server: str
    scenario: str
    clients: int
    rate_hz: float
    stalled: int = 0
    window_s: float = 0.0
    connected: int = 0
    connect_errors: int = 0
    produced: int = 0  # distinct samples (seqs) the server made in the window
    produced_rate_pct: float = 0.0  # of rate_hz x window: did the server keep its sampling rate
    expected: int = 0  # rate x window x clients: the nominal count
    delivered: int = 0  # first copies of in-window seqs that reached a client
    delivered_pct: float = 0.0  # of clients x produced: loss by seq
    delivered_per_s: float = 0.0
    expected_per_s: float = 0.0
    lost: int = 0  # owed minus delivered: gaps (produced, never arrived) plus what was never produced
    gaps: int = 0  # seqs produced in the window that some client never got
    duplicates: int = 0
    disconnects: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    cpu_pct: float = 0.0
    cpu_sys_pct: float = 0.0  # the part of cpu_pct in the kernel (sends on loopback, mostly)
    cpu_us_per_delivery: float = 0.0  # server CPU per sample per client
    peak_rss_mb: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_growth_mb: float = 0.0
    rss_slope_kb_s: float = 0.0  # least-squares slope of VmRSS sampled through the window
    threads: int = 0
    gen_cpu_pct: float = 0.0
    gen_us_per_frame: float = 0.0
    gen_lag_p99_ms: float = 0.0
    gen_lag_max_ms: float = 0.0
    gen_handling_p99_ms: float = 0.0  # kernel receive to the generator handling it: its own delay
    machine_busy_pct: float = 0.0  # both cores together: 200 % is a full machine
    others_pct: float = 0.0  # machine busy less server and generator: someone else's load (and softirqs)
    background_pct: float = 0.0  # the machine's load just before the run, with no server of ours
    grace_s: float = 0.0
    start_s: float = 0.0
    stalled_info: dict = field(default_factory=dict)
    refused: list = field(default_factory=list)
    error: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FILES if hard == resource.RLIM_INFINITY else min(FILES, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


LIVE: set = set()  # servers still running: killed at exit, whatever happens


@atexit.register
def _kill_all() -> None:
    for server in list(LIVE):
        server.kill()


class Server:
    """livedash (in an async mode), the baseline or the Node.js peer, as a process on a free loopback port."""

    def __init__(self, kind: str, rate_hz: float, workdir: Path, label: str, config: str | None = None):
        self.kind, self.port = kind, free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        if kind == NODE:
            cmd = ["node", str(REPO / "bench" / "node" / "server.js"), "--port", str(self.port), "--rate", str(rate_hz)]
        elif kind == "baseline":
            cmd = [SERVER_PYTHON, str(REPO / "bench" / "baseline_server.py"), "--port", str(self.port),
                   "--rate", str(rate_hz)]
        else:
            path = workdir / "livedash.toml"
            path.write_text(config or f"""[server]
max_clients = 10000
max_clients_per_address = 10000

[[channels]]
name = "random"
source = "random"
rate_hz = {rate_hz}
""")
            cmd = [SERVER_PYTHON, "-m", "app", "--config", str(path), "--host", "127.0.0.1",
                   "--port", str(self.port), "--async-mode", kind, "--state-dir", str(workdir / "state"),
                   "--log-level", "warning"]
        self.log = workdir / f"{label}.log"
        self.started = time.monotonic()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            preexec_fn=raise_file_limit, start_new_session=True)
        LIVE.add(self)
        self.ready_s = self._wait()

    def _wait(self) -> float:
        """Seconds from spawning to the first successful GET /."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
                return time.monotonic() - self.started
            except OSError:
                time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"{self.kind} did not start; its log ends:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the whole process, every thread."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / TICK, int(fields[12]) / TICK

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def status(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def memory_mb(self, key: str) -> float:
        return self.status(key) / 1024

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only what it started
            except ProcessLookupError:
                pass
            self.process.wait()
        LIVE.discard(self)


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, interrupts) jiffies of the whole machine, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(f[:8])
    return total - f[3] - f[4], total, f[5] + f[6]


def machine_busy(seconds: float = 1.0) -> float:
    """Percent busy of the whole machine (200 on two cores) over *seconds*."""
    b0, t0, _ = machine_ticks()
    time.sleep(seconds)
    b1, t1, _ = machine_ticks()
    return 100 * os.cpu_count() * (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(limit_pct: float, patience_s: float) -> float:
    """Wait (at most *patience_s*) for the machine to be nearly idle; returns the last load seen."""
    deadline = time.monotonic() + patience_s
    load = machine_busy()
    while load > limit_pct and time.monotonic() < deadline:
        load = machine_busy()
    return load


def quantiles(values, qs=(50, 90, 99)) -> list[float]:
    import numpy
    a = numpy.frombuffer(values, dtype=numpy.float64) if len(values) else numpy.zeros(1)
    return [float(x) for x in numpy.percentile(a, qs)] + [float(a.max())]


async def measure(server: Server, scenario: Scenario, warmup_s: float, window_s: float, client: str,
                  grace_s: float = 5.0) -> Result:
    r = Result(server.kind, scenario.name, scenario.clients, scenario.rate_hz, scenario.stalled,
               start_s=server.ready_s)
    tally = Tally()
    fleet = Fleet(tally, server.port, client)
    stalled = []
    probe = LagProbe()
    try:
        for _ in range(scenario.stalled):
            stalled.append(StalledClient(server.port))
        await fleet.open(scenario.clients)
        await asyncio.sleep(0.2)
        for s in stalled:
            s.join()
        await asyncio.sleep(warmup_s)
        if not server.alive():
            raise RuntimeError(f"server died during the warm-up:\n{server.log_tail()}")
        rss_before, (user0, sys0), machine_before = server.memory_mb("VmRSS"), server.cpu_times(), machine_ticks()
        gen_before, frames_before = time.process_time(), tally.frames
        lags_from = len(probe.lags)
        started = time.monotonic()
        tally.open_window(window_s)
        rss_points = []
        while (left := window_s - (time.monotonic() - started)) > 0:
            rss_points.append((time.monotonic() - started, server.status("VmRSS")))
            await asyncio.sleep(min(0.5, left))
        elapsed = time.monotonic() - started
        if len(rss_points) > 2:
            xs, ys = zip(*rss_points)
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            r.rss_slope_kb_s = sum((x - mx) * (y - my) for x, y in rss_points) / sum((x - mx) ** 2 for x in xs)
        user1, sys1 = server.cpu_times()
        r.cpu_pct = 100 * (user1 - user0 + sys1 - sys0) / elapsed
        r.cpu_sys_pct = 100 * (sys1 - sys0) / elapsed
        r.gen_cpu_pct = 100 * (time.process_time() - gen_before) / elapsed
        busy, total, irq = (a - b for a, b in zip(machine_ticks(), machine_before))
        r.machine_busy_pct = 100 * os.cpu_count() * busy / max(total, 1)
        # Interrupt time (loopback's softirqs) is nobody's process time: not someone else's load.
        r.others_pct = max(0.0, r.machine_busy_pct - 100 * os.cpu_count() * irq / max(total, 1)
                           - r.cpu_pct - r.gen_cpu_pct)
        frames = tally.frames - frames_before
        r.gen_us_per_frame = 1e6 * (time.process_time() - gen_before) / max(frames, 1)
        r.rss_start_mb, r.rss_end_mb = rss_before, server.memory_mb("VmRSS")
        r.rss_growth_mb = r.rss_end_mb - rss_before
        r.peak_rss_mb = server.memory_mb("VmHWM")
        r.threads = int(server.status("Threads"))
        for s in stalled:
            r.stalled_info = tcp_queues(s.local_port, server.port)
        # Late samples of the window: wait until every live client has had one from after it.
        grace_from = time.monotonic()
        while time.monotonic() - grace_from < grace_s and not all(c.past_window for c in fleet.live()):
            await asyncio.sleep(0.05)
        r.grace_s = time.monotonic() - grace_from
        lags = probe.lags[lags_from:]
        if lags:
            r.gen_lag_p99_ms, r.gen_lag_max_ms = quantiles(lags, (99,))
        r.window_s = window_s
    finally:
        probe.stop()
        await fleet.close()
        for s in stalled:
            s.close()
    r.connected, r.connect_errors, r.refused = tally.connected, tally.connect_errors, tally.refused[:3]
    r.disconnects, r.duplicates = tally.disconnects, tally.duplicates
    r.produced = tally.produced()
    r.produced_rate_pct = 100 * r.produced / (scenario.rate_hz * window_s)
    r.expected = round(scenario.rate_hz * window_s * scenario.clients)
    r.delivered = tally.delivered
    # Each client should have had every seq produced in the window; a server that produced
    # fewer than rate x window (less one: where the window falls between two ticks) owes the rest too.
    owed = max(r.produced, round(scenario.rate_hz * window_s) - 1) * scenario.clients
    r.delivered_pct = 100 * r.delivered / owed if owed else 0.0
    r.lost = owed - r.delivered
    r.gaps = r.produced * scenario.clients - r.delivered
    r.delivered_per_s, r.expected_per_s = r.delivered / window_s, scenario.rate_hz * scenario.clients
    if tally.latencies:
        r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms = quantiles(tally.latencies)
        r.gen_handling_p99_ms = quantiles(tally.handling, (99,))[0]
    if r.delivered:
        r.cpu_us_per_delivery = r.cpu_pct / 100 * window_s * 1e6 / r.delivered
    return r


def run_async(coro):
    """On uvloop when it is installed: the generator's cost per message roughly halves."""
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def run_scenario(kind: str, scenario: Scenario, workdir: Path, args, label: str) -> Result:
    background = wait_quiet(args.quiet_pct, args.quiet_wait)
    server = Server(kind, scenario.rate_hz, workdir / label, label)
    try:
        budget = args.warmup + args.window + 5 + 150
        window = max(args.window, args.stall_window) if scenario.stalled else args.window
        r = run_async(asyncio.wait_for(measure(server, scenario, args.warmup, window, args.client), budget + window))
        r.background_pct = background
        return r
    except Exception as e:  # one broken run must not lose the others
        r = Result(kind, scenario.name, scenario.clients, scenario.rate_hz, scenario.stalled,
                   start_s=server.ready_s, error=f"{type(e).__name__}: {e}"[:500])
        return r
    finally:
        server.stop()


def idle(kind: str, workdir: Path, seconds: float, label: str, args) -> dict:
    background = wait_quiet(args.quiet_pct, args.quiet_wait)
    server = Server(kind, 1.0, workdir / label, label)
    try:
        time.sleep(1.0)
        before, started = server.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        return {"server": kind, "idle_cpu_pct": 100 * (server.cpu_seconds() - before) / (time.monotonic() - started),
                "idle_rss_mb": server.memory_mb("VmRSS"), "start_s": server.ready_s, "seconds": seconds,
                "background_pct": background}
    finally:
        server.stop()


# Profiling (optional): py-spy on livedash under 1000 clients, outside the measured runs.

def profile(kind: str, workdir: Path, args, clients: int = 1000) -> dict:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return {"error": "py-spy is not installed in the generator's venv"}
    server = Server(kind, 20.0, workdir / f"profile-{kind}", f"profile-{kind}")
    out = {"server": kind, "clients": clients, "seconds": args.window}
    raw = RESULTS / f"profile-{kind}-{clients}.txt"
    svg = RESULTS / f"profile-{kind}-{clients}.svg"
    gil = RESULTS / f"profile-{kind}-{clients}-gil.txt"

    def record():
        # Blocking mode (py-spy pauses the server for each of its 100 samples a second): exact
        # stacks; the server runs a little slower meanwhile, which is why this is not a measured run.
        for fmt, path, extra in (("raw", raw, []), ("raw", gil, ["--gil"]), ("flamegraph", svg, [])):
            subprocess.run([str(spy), "record", "--pid", str(server.process.pid), "--duration",
                            str(int(args.window)), "--rate", "100", "--format", fmt, "-o", str(path)] + extra,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=args.window + 60, check=True)

    try:
        scenario = Scenario(f"profile {clients}", clients, 20.0)

        async def go():
            tally = Tally()
            fleet = Fleet(tally, server.port, args.client)
            try:
                await fleet.open(clients)
                await asyncio.sleep(args.warmup)
                cpu0, t0 = server.cpu_seconds(), time.monotonic()
                await asyncio.get_running_loop().run_in_executor(None, record)
                out["cpu_pct_while_profiled"] = 100 * (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
                out["connected"] = tally.connected
            finally:
                await fleet.close()

        run_async(asyncio.wait_for(go(), 2 * args.window + args.warmup + 200))
        out["all_threads"] = summarize_profile(raw)
        out["gil"] = summarize_profile(gil)
        out["raw"], out["raw_gil"], out["svg"] = (str(p.relative_to(REPO)) for p in (raw, gil, svg))
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        server.stop()
    return out


WAITS = {"Condition.wait", "Event.wait", "Thread.join", "Semaphore.acquire", "Barrier.wait"}
FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^)]*?)(?::(?P<line>\d+))?\)$")


def area(path: str) -> str:
    path = "/" + path.lstrip("/")
    for key, name in (("/socketio/", "python-socketio"), ("/engineio/", "python-engineio"),
                      ("/eventlet/", "eventlet"), ("/flask_socketio/", "flask-socketio"),
                      ("/json/", "json (stdlib)"), ("/werkzeug/", "werkzeug"), ("/simple_websocket/", "simple-websocket"),
                      ("/wsproto/", "wsproto"), ("/greenlet", "greenlet"), ("/threading.py", "threading (stdlib)"),
                      ("/queue.py", "queue (stdlib)"), ("/socket.py", "socket (stdlib)"), ("/selectors.py", "selectors (stdlib)"),
                      ("/app/", "livedash app")):
        if key in path:
            return name
    return "other: " + path.rsplit("/", 1)[-1]


def summarize_profile(raw: Path, top: int = 25) -> dict:
    """From py-spy's collapsed stacks: CPU shares by package (own time) and by function (own and inclusive)."""
    total = waiting = counted = 0
    own_fn: dict[str, int] = {}
    incl_fn: dict[str, int] = {}
    own_area: dict[str, int] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        names = []
        for f in frames:
            m = FRAME.match(f.strip())
            fn, file = (m["fn"], m["file"]) if m else (f, "")
            names.append((f"{fn} ({file})", area(file)))
        if not names:
            continue
        leaf, leaf_area = names[-1]
        if leaf.split(" (")[0] in WAITS and leaf_area == "threading (stdlib)":
            waiting += n
            continue
        counted += n
        own_fn[leaf] = own_fn.get(leaf, 0) + n
        own_area[leaf_area] = own_area.get(leaf_area, 0) + n
        for name in set(n_ for n_, _ in names):
            incl_fn[name] = incl_fn.get(name, 0) + n

    def shares(d):
        return [[k, round(100 * v / max(counted, 1), 1)] for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "waiting_pct": round(100 * waiting / max(total, 1), 1), "own_by_package_pct": shares(own_area), "own_by_function_pct": shares(own_fn),
            "inclusive_by_function_pct": shares(incl_fn)}


def profile_md(prof: dict) -> list[str]:
    md = [f"## Profile: livedash ({prof['server']}), {prof['clients']} clients at 20 samples/s, py-spy "
          f"{prof['seconds']:g} s at 100 Hz", "",
          f"Server CPU while profiled: {prof.get('cpu_pct_while_profiled', 0):.0f} % of a core. "
          "'GIL' counts only the thread holding the GIL (the Python work); 'all threads' adds the time "
          "in system calls (sends) and threads py-spy saw running outside the GIL; waits in threading "
          "(a thread blocked on a lock or condition) are left out of the shares and counted apart.", ""]
    for key, title in (("gil", "GIL"), ("all_threads", "all threads")):
        p = prof[key]
        md += [f"### {title} ({p['samples']} samples, {p['waiting_pct']} % of them waiting)", "", "Own time by package:", ""]
        md += [f"- {name}: {pct} %" for name, pct in p["own_by_package_pct"]]
        md += ["", "Own time by function (top):", ""]
        md += [f"- `{name}`: {pct} %" for name, pct in p["own_by_function_pct"][:15]]
        md += ["", "Inclusive, by function (top):", ""]
        md += [f"- `{name}`: {pct} %" for name, pct in p["inclusive_by_function_pct"]]
        md += [""]
    md += [f"Flame graph: `{prof['svg']}`; collapsed stacks: `{prof['raw']}`, `{prof['raw_gil']}`", ""]
    return md


# Reporting.

def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def table(results: list[Result]) -> str:
    peer = {(r.scenario, r.clients): r for r in results if r.server == NODE and not r.error}
    lines = ["| server | scenario | connected | delivered (by seq) | delivered/s of expected | lost: gaps + not produced | dup "
             "| p50 ms | p90 ms | p99 ms | max ms | disc. | CPU % of a core (sys) | us CPU per delivery | peak RSS MB "
             "| generator CPU %, its delay p99 ms | machine busy % of 200 (others) | vs Node: delivered, p99, CPU, RSS |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.server} | {r.scenario} | - | failed: {r.error.splitlines()[0][:120]} "
                         + "| " * 14 + "|")
            continue
        base = peer.get((r.scenario, r.clients))
        vs = "" if base is None or r.server in (NODE, "baseline") else ", ".join((
            ratio(r.delivered_pct, base.delivered_pct), ratio(r.p99_ms, base.p99_ms),
            ratio(r.cpu_pct, base.cpu_pct), ratio(r.peak_rss_mb, base.peak_rss_mb)))
        lines.append(
            f"| {r.server} | {r.scenario} | {r.connected}/{r.clients} | {r.delivered_pct:.2f}% "
            f"| {r.delivered_per_s:.0f}/{r.expected_per_s:.0f} ({100 * r.delivered_per_s / r.expected_per_s:.1f}%) "
            f"| {r.gaps} + {r.lost - r.gaps} | {r.duplicates} | {r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} "
            f"| {r.disconnects} | {r.cpu_pct:.0f} ({r.cpu_sys_pct:.0f}) | {r.cpu_us_per_delivery:.0f} | {r.peak_rss_mb:.0f} "
            f"| {r.gen_cpu_pct:.0f}, {r.gen_handling_p99_ms:.1f} | {r.machine_busy_pct:.0f} ({r.others_pct:.0f}) | {vs} |")
    return "\n".join(lines)


def notes(results: list[Result], idles: list[dict], starts: dict[str, list[float]]) -> str:
    out = []
    for e in idles:
        s = starts.get(e["server"], [])
        out.append(f"- {e['server']}: idle (one 1 Hz channel, no clients, {e['seconds']:g} s) "
                   f"{e['idle_cpu_pct']:.2f} % CPU, {e['idle_rss_mb']:.0f} MB RSS; start to the first GET /: "
                   f"first {s[0]:.2f} s, median {statistics.median(s):.2f} s, max {max(s):.2f} s over {len(s)} starts"
                   if s else "")
    for r in results:
        if r.stalled and not r.error:
            plain = next((p for p in results if p.server == r.server and p.scenario == f"fan-out {r.clients}"
                          and not p.error), None)
            info = r.stalled_info
            vs = (f"; without it (fan-out {r.clients}): {plain.delivered_pct:.2f} %, p99 {plain.p99_ms:.1f} ms"
                  if plain else "")
            out.append(f"- {r.server}, {r.stalled} stalled client beside {r.clients}: the others got "
                       f"{r.delivered_pct:.2f} %, p99 {r.p99_ms:.1f} ms{vs}. Server RSS {r.rss_start_mb:.1f} -> "
                       f"{r.rss_end_mb:.1f} MB over the {r.window_s:g} s window ({1024 * r.rss_growth_mb:+.0f} kB, "
                       f"slope {r.rss_slope_kb_s:+.1f} kB/s); bytes waiting in the kernel "
                       f"for the stalled client: {info.get('server_unsent_bytes')} unsent by the server, "
                       f"{info.get('client_unread_bytes')} unread by the client; its connection: "
                       f"{info.get('server_side_state')}")
    for r in results:
        if r.error:
            out.append(f"- {r.server} {r.scenario} failed: {r.error}")
        elif r.gen_cpu_pct > 85:
            out.append(f"- {r.server} {r.scenario}: the generator was busy (CPU {r.gen_cpu_pct:.0f} %, its own delay "
                       f"p99 {r.gen_handling_p99_ms:.1f} ms): if it reads late, the server's sends may wait on it")
        if not r.error and (r.others_pct > 25 or r.background_pct > 25):
            out.append(f"- {r.server} {r.scenario}: other load on the machine: {r.background_pct:.0f} % of a core just "
                       f"before, {r.others_pct:.0f} % besides server and generator in the window: figures are pessimistic")
        if not r.error and abs(r.produced_rate_pct - 100) > 2:
            out.append(f"- {r.server} {r.scenario}: the server produced {r.produced_rate_pct:.1f} % of "
                       f"{r.rate_hz:g} samples/s in the window (its sampling fell behind)")
    return "\n".join(o for o in out if o)


def check_targets(results: list[Result], idles: list[dict], starts: dict[str, list[float]], modes) -> list[dict]:
    checks = []
    peer = {r.scenario: r for r in results if r.server == NODE and not r.error}
    for mode in modes:
        for scenario, metric, limit, how, text in TARGETS:
            if limit == NODE:
                limit = getattr(peer[scenario], metric) if scenario in peer else None
            if scenario == "idle":
                e = next((e for e in idles if e["server"] == mode), None)
                value = e and e["idle_cpu_pct"]
            elif scenario == "start":
                value = max(starts[mode]) if starts.get(mode) else None
            else:
                r = next((r for r in results if r.server == mode and r.scenario == scenario and not r.error), None)
                value = r and getattr(r, metric)
            ok = None if value is None or limit is None else (value >= limit if how == "min" else value <= limit)
            checks.append({"server": mode, "target": text, "value": value, "limit": limit, "ok": ok})
    return checks


def targets_md(checks: list[dict]) -> str:
    lines = ["| livedash | target | limit | measured | |", "|---|---|---|---|---|"]
    for c in checks:
        v = "not run" if c["value"] is None else f"{c['value']:.2f}"
        limit = "not run" if c["limit"] is None else f"{c['limit']:.2f}"
        lines.append(f"| {c['server']} | {c['target']} | {limit} | {v} "
                     f"| {'-' if c['ok'] is None else 'met' if c['ok'] else 'MISSED'} |")
    return "\n".join(lines)


def plot(results: list[Result], checks: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (lat, dlv), (cpu, rss) = axes
    colors = {"baseline": "tab:gray", NODE: "tab:green", "eventlet": "tab:blue", "threading": "tab:orange"}
    for server in dict.fromkeys(r.server for r in results):
        rows = sorted((r for r in results if r.server == server and r.scenario.startswith("fan-out") and not r.error),
                      key=lambda r: r.clients)
        if not rows:
            continue
        xs = [r.clients for r in rows]
        name = {"baseline": "tutorial-style baseline", NODE: "Node.js socket.io"}.get(server, f"livedash ({server})")
        c = colors.get(server)
        lat.plot(xs, [r.p99_ms for r in rows], marker="o", color=c, label=f"{name} p99")
        lat.plot(xs, [r.p50_ms for r in rows], marker=".", linestyle="--", color=c, label=f"{name} p50")
        dlv.plot(xs, [r.delivered_pct for r in rows], marker="o", color=c, label=name)
        cpu.plot(xs, [r.cpu_pct for r in rows], marker="o", color=c, label=name)
        rss.plot(xs, [r.peak_rss_mb for r in rows], marker="o", color=c, label=name)
    # The targets, as red marks where they apply (at 1000 clients p99 and CPU: Node's, its own curve).
    lat.scatter([2000], [200], marker="_", s=400, color="red", zorder=5, label="target p99 (max)")
    dlv.scatter([1000, 2000], [99.9, 99.0], marker="_", s=400, color="red", zorder=5, label="target (min)")
    rss.scatter([10, 1000], [60, 150], marker="_", s=400, color="red", zorder=5, label="target (max)")
    for ax, title, unit in ((lat, "latency (arrival - sample t), 20 samples/s", "ms, log scale"),
                            (dlv, "samples delivered (by seq; unproduced count as lost)", "% of rate x window x clients"),
                            (cpu, "server CPU", "% of one core"), (rss, "server peak RSS (VmHWM)", "MB")):
        ax.set_xscale("log")
        ax.set_xlabel("clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    lat.set_yscale("log")
    low = min((r.delivered_pct for r in results if r.scenario.startswith("fan-out") and not r.error), default=90)
    dlv.set_ylim(max(0, min(low, 98.5) - 1), 100.2)
    fig.suptitle(f"livedash fan-out, one asyncio generator on the same machine ({machine()['cpu']}, "
                 f"{machine()['cores']} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.machine())
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version()}


def versions() -> dict:
    code = ("import importlib.metadata as m, sys, platform; print({n: m.version(n) for n in "
            "('python-socketio', 'python-engineio', 'Flask-SocketIO', 'eventlet', 'simple-websocket', 'Werkzeug')} "
            "| {'python': platform.python_version()})")
    found = {}
    try:
        found["server"] = eval(subprocess.run([SERVER_PYTHON, "-c", code], capture_output=True, text=True,
                                              timeout=30).stdout.strip() or "{}")
    except Exception:
        pass
    gen = {}
    for name in ("uvloop", "aiohttp", "matplotlib"):
        try:
            gen[name] = __import__(name).__version__
        except ImportError:
            gen[name] = None
    found["generator"] = gen
    try:
        lock = json.loads((REPO / "bench" / "node" / "package-lock.json").read_text())
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        found["node"] = {"node": node, "socket.io": lock["packages"]["node_modules/socket.io"]["version"]}
    except Exception:
        pass
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "app"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        found["app"] = head + (" with uncommitted changes in app/" if dirty else "")
    except Exception:
        pass
    return found


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench", description="livedash fan-out benchmark (see bench/__main__.py)")
    parser.add_argument("--quick", action="store_true", help="short windows, fewer scenarios: a smoke check")
    parser.add_argument("--modes", default="eventlet,threading",
                        help="livedash async modes, comma separated (default: eventlet,threading; the baseline "
                             "and the Node.js peer always run)")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                        help="the generator's WebSocket client (default raw: asyncio protocol; aiohttp to cross-check)")
    parser.add_argument("--clients", help="fan-out client counts, comma separated (default 10,100,1000,2000)")
    parser.add_argument("--only", help="run only scenarios whose name contains this (e.g. 'fan-out 1000')")
    parser.add_argument("--window", type=float, help="measurement window, s (default 10; --quick 3)")
    parser.add_argument("--warmup", type=float, help="warm-up after all clients joined, s (default 3; --quick 1)")
    parser.add_argument("--stall-window", type=float, default=None,
                        help="window of the stalled-client scenario, s (default 20; --quick 3): long enough "
                             "for the kernel's buffers to fill and the server to start queueing")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, py-spy on livedash (first mode) under 1000 clients: where the time goes")
    parser.add_argument("--profile-only", action="store_true", help="only the profile: no scenarios, no idle")
    parser.add_argument("--profile-clients", type=int, default=1000, help="clients while profiling (default 1000)")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each run, wait up to this long (s) for the machine to be quiet (default 60)")
    parser.add_argument("--quiet-pct", type=float, default=20.0,
                        help="quiet: the machine busy at most this %% of one core (default 20)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    parser.add_argument("--aggregates", action="store_true",
                        help="only the dashboard's memory: 24 h of aggregates, 8 channels at 50 Hz (--quick: 1 h)")
    parser.add_argument("--page", action="store_true",
                        help="only the page's CPU in Chromium: 4 channels at 20 Hz, 60 s a window (--quick: 10 s)")
    parser.add_argument("--mqtt", action="store_true",
                        help="only the CPU cost of publishing four channels at 50 Hz to MQTT (also in the full run)")
    args = parser.parse_args()
    if args.aggregates or args.page:
        return dashboard_figures(args)
    args.window = args.window or (3.0 if args.quick else 10.0)
    args.stall_window = args.stall_window or (args.window if args.quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in ("eventlet", "threading") for m in modes):
        parser.error("--modes: eventlet and/or threading")
    if not Path(SERVER_PYTHON).exists():
        parser.error(f"no server python at {SERVER_PYTHON} (bench/run makes it; or set BENCH_SERVER_PYTHON)")

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    raise_file_limit()

    counts = [int(n) for n in args.clients.split(",")] if args.clients else ([10, 100] if args.quick else [10, 100, 1000, 2000])
    scenarios = [Scenario(f"fan-out {n}", n, 20.0) for n in counts]
    scenarios += [Scenario("200 Hz channel", 100, 200.0), Scenario("stalled client", 100, 20.0, stalled=1)]
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]
    if args.profile_only:
        scenarios, args.profile, args.no_write = [], True, True
    if args.mqtt:
        scenarios, args.no_write = [], True
    servers = ["baseline", NODE] + modes
    results: list[Result] = []
    starts: dict[str, list[float]] = {k: [] for k in servers}
    idles: list[dict] = []
    prof = None
    mqtt = None
    began = time.monotonic()
    print(f"bench: {len(scenarios)} scenarios x {len(servers)} servers, warm-up {args.warmup:g} s, window "
          f"{args.window:g} s, client {args.client}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="livedash-bench-") as tmp:
            work = Path(tmp)
            run = 0
            for scenario in scenarios:
                for kind in servers:
                    run += 1
                    run_began = time.monotonic()
                    try:
                        r = run_scenario(kind, scenario, work, args, f"{run:02d}-{kind}")
                    except RuntimeError as e:  # did not start
                        r = Result(kind, scenario.name, scenario.clients, scenario.rate_hz, scenario.stalled,
                                   error=str(e)[:500])
                    results.append(r)
                    if r.start_s:
                        starts[kind].append(r.start_s)
                    print(f"  {kind:9} {scenario.name:15} " + (f"FAILED {r.error.splitlines()[0]}" if r.error else
                          f"{r.connected:4}/{r.clients:<4} delivered {r.delivered_pct:6.2f}%  p50 {r.p50_ms:6.1f}  "
                          f"p99 {r.p99_ms:7.1f}  max {r.max_ms:7.1f} ms  CPU {r.cpu_pct:4.0f}% ({r.cpu_us_per_delivery:4.0f} us/msg)  "
                          f"RSS {r.peak_rss_mb:4.0f} MB  "
                          f"gen {r.gen_cpu_pct:3.0f}% (delay p99 {r.gen_handling_p99_ms:5.1f} ms)  machine {r.machine_busy_pct:3.0f}%")
                          + f"  [{time.monotonic() - run_began:.0f} s]", flush=True)
            if not args.profile_only and (args.mqtt or not args.only):
                wait_quiet(args.quiet_pct, args.quiet_wait)
                mqtt = mqtt_cost(Server, free_port, TICK, work / "mqtt", 3.0 if args.quick else 10.0)
                print("  " + mqtt_line(mqtt), flush=True)
                if args.mqtt:
                    return 0
            for kind in servers if not args.profile_only else []:
                try:
                    e = idle(kind, work, 3.0 if args.quick else 10.0, f"idle-{kind}", args)
                    idles.append(e)
                    starts[kind].append(e["start_s"])
                    print(f"  {kind:9} idle: {e['idle_cpu_pct']:.2f}% CPU, {e['idle_rss_mb']:.0f} MB, start "
                          f"{e['start_s']:.2f} s", flush=True)
                except RuntimeError as err:
                    print(f"  {kind:9} idle: failed: {err}", flush=True)
            if args.profile and modes:
                RESULTS.mkdir(parents=True, exist_ok=True)
                prof = []
                for kind in modes:
                    wait_quiet(args.quiet_pct, args.quiet_wait)
                    p = profile(kind, work, args, args.profile_clients)
                    prof.append(p)
                    if p.get("error"):
                        print(f"  profile {kind}: failed: {p['error']}", flush=True)
                    else:
                        path = RESULTS / f"profile-{kind}-{args.profile_clients}.md"
                        path.write_text("\n".join(profile_md(p)))
                        print(f"  profile {kind}: {path.relative_to(REPO)}", flush=True)
    except KeyboardInterrupt:
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        _kill_all()
        return 130
    finally:
        _kill_all()

    checks = check_targets(results, idles, starts, modes)
    text = table(results)
    extra = notes(results, idles, starts)
    if mqtt:
        extra += "\n- " + mqtt_line(mqtt)
    m = machine()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    took = time.monotonic() - began
    print("\n" + text + "\n\n" + extra + "\n\n" + targets_md(checks))
    if args.no_write:
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    v = versions()
    (RESULTS / "latest.json").write_text(json.dumps(
        {"date": stamp, "machine": m, "versions": v, "quick": args.quick, "client": args.client,
         "warmup_s": args.warmup, "window_s": args.window, "took_s": round(took, 1),
         "results": [asdict(r) for r in results], "idle": idles, "start_s": starts, "targets": checks,
         "profile": prof, "mqtt": mqtt}, indent=1))
    server_v = ", ".join(f"{k} {val}" for k, val in v.get("server", {}).items())
    md = [f"# livedash fan-out benchmark{' (--quick)' if args.quick else ''}", "",
          f"- date: {stamp}; took {took / 60:.1f} min",
          f"- machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}",
          f"- app: {v.get('app', '?')}; server packages: {server_v}",
          f"- Node.js peer (bench/node/server.js): Node {v.get('node', {}).get('node', '?')}, socket.io "
          f"{v.get('node', {}).get('socket.io', '?')}, WebSocket only, perMessageDeflate off, the same `sample` payload",
          f"- generator: one asyncio process ({'uvloop ' + v['generator']['uvloop'] if v['generator'].get('uvloop') else 'asyncio'}"
          f", {args.client} WebSocket client) on the same machine; warm-up {args.warmup:g} s, window {args.window:g} s "
          "in sample time, late samples waited for up to 5 s",
          "- delivered (by seq): first copies of the window's seqs that reached each client, of clients x seqs "
          "produced; delivered/s of expected: against rate x clients; latency: arrival minus the sample's `t`; "
          "CPU: utime+stime over the window, % of one core; peak RSS: VmHWM", "",
          text, "", extra, "", "## Targets", "", targets_md(checks), ""]
    for p in prof or []:
        if not p.get("error"):
            md += profile_md(p)
    (RESULTS / "latest.md").write_text("\n".join(md))
    plot(results, checks, RESULTS / "latest.png")
    print(f"\nwrote {RESULTS}/latest.json, latest.md, latest.png ({took / 60:.1f} min)")
    return 0


def dashboard_figures(args) -> int:
    """--aggregates and --page (bench/dashboard.py): printed, and kept in bench/results/dashboard.md."""
    from . import dashboard

    md = ["# livedash dashboard figures", "", f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          f"{' (--quick)' if args.quick else ''}; machine: {machine()['cpu']}, {machine()['cores']} cores", ""]
    if args.aggregates:
        r = dashboard.memory_in(SERVER_PYTHON, 1.0 if args.quick else 24.0)
        md += ["## Memory of the aggregates", ""] + dashboard.aggregates_md(r) + [""]
    if args.page:
        rows = dashboard.page_cpu(SERVER_PYTHON, 10.0 if args.quick else 60.0)
        md += ["## The page in Chromium (CDP Performance.getMetrics; renderer main thread, % of wall time)", ""]
        md += dashboard.page_md(rows) + [""]
    text = "\n".join(md)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "dashboard.md").write_text(text)
        print(f"wrote {RESULTS}/dashboard.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
