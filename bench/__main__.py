"""The fan-out benchmark: N real Socket.IO clients over WebSocket against livedash and against
the tutorial's threading server, on this machine. ``bench/run`` runs it; see the README.

One asyncio process plays every client, speaking Engine.IO 4 / Socket.IO 5 directly over
aiohttp's WebSocket (python-socketio's client is far too heavy for thousands). For each
scenario it measures, over a fixed window after a warm-up: samples delivered against
expected, latency (arrival minus the sample's own server time `t`), disconnects, and the
server's CPU share (of one core) and peak RSS from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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

import aiohttp

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
# The servers run from a venv with only what the Pi gets (requirements.txt): the test venv's
# extra packages (aiohttp, requests) would be imported by python-engineio and inflate RSS.
SERVER_PYTHON = os.environ.get("BENCH_SERVER_PYTHON") or str(REPO / ".venv-server" / "bin" / "python")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Scenario:
    name: str
    clients: int
    rate_hz: float
    stalled: int = 0  # clients that connect and then never read


@dataclass
class Result:
    server: str
    scenario: str
    clients: int
    rate_hz: float
    connected: int = 0
    expected: int = 0
    delivered: int = 0
    duplicates: int = 0
    disconnects: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    cpu_pct: float = 0.0
    peak_rss_mb: float = 0.0
    rss_growth_mb: float = 0.0

    @property
    def delivered_pct(self) -> float:
        return 100.0 * self.delivered / self.expected if self.expected else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """livedash (in an async mode) or the baseline, as a process on a free loopback port."""

    def __init__(self, kind: str, rate_hz: float, workdir: Path):
        self.kind, self.port = kind, free_port()
        if kind == "baseline":
            cmd = [SERVER_PYTHON, str(REPO / "bench" / "baseline_server.py"), "--port", str(self.port),
                   "--rate", str(rate_hz)]
        else:
            config = workdir / f"{kind}.toml"
            config.write_text(f"""[server]
max_clients = 10000
max_clients_per_address = 10000

[[channels]]
name = "random"
source = "random"
rate_hz = {rate_hz}
""")
            cmd = [SERVER_PYTHON, "-m", "app", "--config", str(config), "--host", "127.0.0.1",
                   "--port", str(self.port), "--async-mode", kind, "--state-dir", str(workdir / "state"),
                   "--log-level", "warning"]
        self.started = time.monotonic()
        self.process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=raise_file_limit)
        self.ready_s = self._wait()

    def _wait(self) -> float:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
                return time.monotonic() - self.started
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.kind} did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def memory_mb(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Clients:
    """Every simulated browser, counting what arrives while ``recording``."""

    def __init__(self):
        self.recording = False
        self.latencies: list[float] = []
        self.delivered = self.duplicates = self.disconnects = self.connected = 0

    async def browser(self, session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
        last_seq = 0
        try:
            async with session.ws_connect(url, autoping=False, max_msg_size=0, compress=0) as ws:
                await ws.send_str("40")  # connect to the default namespace
                self.connected += 1
                async for msg in ws:
                    data = msg.data
                    if data == "2":  # Engine.IO ping
                        await ws.send_str("3")
                    elif data.startswith("42"):
                        arrived = time.time() * 1000
                        event, payload = json.loads(data[2:])
                        samples = [payload] if event == "sample" else payload["samples"] if event == "samples" else ()
                        for s in samples:
                            if s["seq"] <= last_seq:
                                self.duplicates += self.recording
                                continue
                            last_seq = s["seq"]
                            if self.recording:
                                self.delivered += 1
                                self.latencies.append(arrived - s["t"])
                    if stop.is_set():
                        break
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            pass
        if not stop.is_set():
            self.disconnects += 1


async def stalled_client(port: int, stop: asyncio.Event) -> None:
    """Opens a WebSocket and never reads again: a phone on bad Wi-Fi, a hung tab."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    writer.write(bytes([0x81, 0x82, 0, 0, 0, 0]) + b"40")  # a masked text frame: "40"
    await writer.drain()
    await stop.wait()
    writer.close()


async def measure(server: Server, scenario: Scenario, warmup_s: float, window_s: float) -> Result:
    result = Result(server.kind, scenario.name, scenario.clients, scenario.rate_hz)
    clients, stop = Clients(), asyncio.Event()
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(stalled_client(server.port, stop)) for _ in range(scenario.stalled)]
        for i in range(scenario.clients):
            tasks.append(asyncio.create_task(clients.browser(session, url, stop)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a gentle ramp: 1000 browsers a second
        deadline = time.monotonic() + 60
        while clients.connected < scenario.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(warmup_s)
        rss_before, cpu_before = server.memory_mb("VmRSS"), server.cpu_seconds()
        clients.recording, started = True, time.monotonic()
        await asyncio.sleep(window_s)
        clients.recording = False
        elapsed = time.monotonic() - started
        result.cpu_pct = 100 * (server.cpu_seconds() - cpu_before) / elapsed
        result.rss_growth_mb = server.memory_mb("VmRSS") - rss_before
        result.peak_rss_mb = server.memory_mb("VmHWM")
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result.connected = clients.connected
    result.expected = round(scenario.clients * scenario.rate_hz * elapsed)
    result.delivered, result.duplicates, result.disconnects = clients.delivered, clients.duplicates, clients.disconnects
    if clients.latencies:
        q = statistics.quantiles(clients.latencies, n=100)
        result.p50_ms, result.p90_ms, result.p99_ms = q[49], q[89], q[98]
        result.max_ms = max(clients.latencies)
    return result


def idle_and_startup(kind: str, workdir: Path, seconds: float) -> dict:
    server = Server(kind, 1.0, workdir)
    try:
        time.sleep(1.0)
        before = server.cpu_seconds()
        time.sleep(seconds)
        return {"server": kind, "idle_cpu_pct": 100 * (server.cpu_seconds() - before) / seconds,
                "start_s": server.ready_s, "idle_rss_mb": server.memory_mb("VmRSS")}
    finally:
        server.stop()


def table(results: list[Result], baseline: dict[tuple, Result]) -> str:
    lines = ["| server | scenario | clients | delivered | p50 ms | p90 ms | p99 ms | max ms | disconnects "
             "| CPU % of a core | peak RSS MB | vs baseline (delivered, p99) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        base = baseline.get((r.scenario, r.clients))
        ratio = "" if base is None or r.server == "baseline" else (
            f"{r.delivered_pct / max(base.delivered_pct, 0.01):.1f}x, {r.p99_ms / max(base.p99_ms, 0.01):.2f}x")
        lines.append(f"| {r.server} | {r.scenario} | {r.connected}/{r.clients} | {r.delivered_pct:.2f}% | "
                     f"{r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.disconnects} | "
                     f"{r.cpu_pct:.0f} | {r.peak_rss_mb:.0f} | {ratio} |")
    return "\n".join(lines)


def plot(results: list[Result], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, dlv) = plt.subplots(1, 2, figsize=(11, 4))
    for server in dict.fromkeys(r.server for r in results):
        rows = [r for r in results if r.server == server and r.scenario.startswith("fan-out")]
        xs = [r.clients for r in rows]
        lat.plot(xs, [r.p99_ms for r in rows], marker="o", label=f"{server} p99")
        lat.plot(xs, [r.p50_ms for r in rows], marker=".", linestyle="--", label=f"{server} p50")
        dlv.plot(xs, [r.delivered_pct for r in rows], marker="o", label=server)
    for ax, title, unit in ((lat, "latency at 20 samples/s", "ms"), (dlv, "samples delivered", "%")):
        ax.set_xscale("log")
        ax.set_xlabel("clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    lat.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.machine())
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--quick", action="store_true", help="short windows, small scenarios: a smoke check")
    parser.add_argument("--modes", default="eventlet", help="livedash async modes to run, comma separated")
    args = parser.parse_args()
    raise_file_limit()
    warmup, window = (1.0, 3.0) if args.quick else (3.0, 10.0)
    scenarios = [Scenario(f"fan-out {n}", n, 20.0) for n in ((10, 100) if args.quick else (10, 100, 1000, 2000))]
    scenarios += [Scenario("200 Hz channel", 100, 200.0), Scenario("one stalled client", 100, 20.0, stalled=1)]
    servers = ["baseline"] + args.modes.split(",")
    results, extra = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in scenarios:
            for kind in servers:
                server = Server(kind, scenario.rate_hz, Path(tmp))
                try:
                    r = asyncio.run(measure(server, scenario, warmup, window))
                finally:
                    server.stop()
                results.append(r)
                print(f"{kind:9} {scenario.name:20} delivered {r.delivered_pct:6.2f}%  p99 {r.p99_ms:8.1f} ms  "
                      f"CPU {r.cpu_pct:4.0f}%  RSS {r.peak_rss_mb:4.0f} MB", flush=True)
        for kind in servers[1:]:
            extra.append(idle_and_startup(kind, Path(tmp), 3.0 if args.quick else 10.0))
    baseline = {(r.scenario, r.clients): r for r in results if r.server == "baseline"}
    text = table(results, baseline)
    idle = "\n".join(f"- {e['server']}: idle (one 1 Hz channel, no clients) {e['idle_cpu_pct']:.2f}% CPU, "
                     f"{e['idle_rss_mb']:.0f} MB RSS; start to serving the page {e['start_s']:.2f} s" for e in extra)
    print("\n" + text + "\n\n" + idle)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (RESULTS / "latest.json").write_text(json.dumps(
        {"machine": machine(), "date": stamp, "quick": args.quick,
         "results": [asdict(r) | {"delivered_pct": r.delivered_pct} for r in results], "idle_and_start": extra},
        indent=1))
    (RESULTS / "latest.md").write_text(f"Run {stamp} on {machine()}; load generator on the same machine"
                                       f"{' (--quick)' if args.quick else ''}.\n\n{text}\n\n{idle}\n")
    plot(results, RESULTS / "latest.png")
    print(f"\nwrote {RESULTS}/latest.json, latest.md, latest.png")


if __name__ == "__main__":
    main()
