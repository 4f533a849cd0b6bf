"""Dashboard figures (issue 12): what hours of history cost in memory, and what the page costs a browser.

``./bench/run --aggregates``: 24 h of aggregates for 8 channels at 50 Hz, fed through the real
``Aggregates`` with a simulated clock, measured with tracemalloc; beside it the same day kept as
raw samples (measured on a sample of them, then multiplied) and the size of the saved state.

``./bench/run --page``: the real page in Debian's Chromium (Playwright, CDP ``Performance.getMetrics``)
against a real livedash with four random channels at 20 Hz, for 60 s (``--quick``: 10 s) at each of
the windows 1m (raw samples), 5m and 1h (aggregates): the renderer main thread's task and
script time per second of wall time. Printed, never asserted.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
T0_MS = 1_700_000_000_000.0


def aggregates_memory(channels: int = 8, rate_hz: float = 50.0, hours: float = 24.0) -> dict:
    """Feed *channels* x *rate_hz* for *hours* of simulated time; what the aggregates hold then.

    Runs in the server's venv (``python -m bench.dashboard memory``): the app's own classes, as on the Pi.
    """
    from app.aggregates import Aggregates
    from app.hub import Sample

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    aggs = [Aggregates() for _ in range(channels)]
    made = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()  # (tracing every add would triple its time; growth is checked two other ways below)
    period_ms = 1000.0 / rate_hz
    n = int(hours * 3600 * rate_hz)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    for agg in aggs:
        add = agg.add
        for i in range(n):
            add(i + 1, T0_MS + i * period_ms, float(i % 997))
    took = time.perf_counter() - began
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    filled = sum(sys.getsizeof(column) for a in aggs for t in a.tiers
                 for column in (t.number, t.min, t.max, t.sum, t.count))
    saved = len(json.dumps({f"c{i}": a.snapshot() for i, a in enumerate(aggs)}, separators=(",", ":")))
    # The peer: the same day as raw samples in a ring (what the raw history costs per sample).
    tracemalloc.start()
    ring: deque = deque(maxlen=100_000)
    before = tracemalloc.get_traced_memory()[0]
    ring.extend(Sample(i, T0_MS + i * period_ms, float(i % 997) + 0.5) for i in range(100_000))
    per_sample = (tracemalloc.get_traced_memory()[0] - before) / 100_000
    tracemalloc.stop()
    return {"channels": channels, "rate_hz": rate_hz, "hours": hours, "samples": n * channels,
            "bound_bytes": sum(a.bytes_bound() for a in aggs), "made_bytes": made, "filled_bytes": filled,
            "rss_growth_bytes": rss_growth,
            "us_per_sample": took / (n * channels) * 1e6, "saved_json_bytes": saved,
            "raw_bytes_per_sample": per_sample, "raw_day_bytes": per_sample * n * channels}


def aggregates_md(r: dict) -> list[str]:
    mb = 1024 * 1024
    core = r["us_per_sample"] * r["channels"] * r["rate_hz"] / 1e4  # % of one core, live
    return [
        f"| kept | for {r['channels']} channels at {r['rate_hz']:g} Hz, {r['hours']:g} h "
        f"({r['samples'] / 1e6:.1f} M samples) |",
        "|---|---|",
        f"| aggregates (1 s for 62 min, 1 min for 25 h): their rings after the feed | {r['filled_bytes'] / mb:.2f} MB "
        f"(bound {r['bound_bytes'] / mb:.2f} MB; {r['made_bytes'] / mb:.2f} MB allocated when made, before any "
        f"sample; the process's peak RSS grew {r['rss_growth_bytes'] / mb:.2f} MB during the feed) |",
        f"| the same {r['hours']:g} h as raw samples, {r['raw_bytes_per_sample']:.0f} B each | "
        f"{r['raw_day_bytes'] / mb:,.0f} MB |",
        f"| saved with the history (JSON, all buckets full) | {r['saved_json_bytes'] / mb:.2f} MB |",
        f"| time to fold one sample in | {r['us_per_sample']:.1f} µs ({core:.2f} % of a core at this rate) |",
    ]


FOUR_AT_20HZ = "".join(f"""
[[channels]]
name = "c{i}"
label = "Channel {i}"
source = "random"
rate_hz = 20
""" for i in range(1, 5))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page_cpu(server_python: str, seconds: float, windows=("1m", "5m", "1h")) -> list[dict]:
    """The page's main-thread time in Chromium, per window, against one running server."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="livedash-page-") as tmp:
        config = Path(tmp) / "livedash.toml"
        config.write_text(FOUR_AT_20HZ)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
        server = subprocess.Popen([server_python, "-m", "app", "--config", str(config), "--host", "127.0.0.1",
                                   "--port", str(port), "--state-dir", str(Path(tmp) / "state")],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(url + "/healthz")
            time.sleep(2.0)  # a little history for the first page
            results = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-quic", "--no-sandbox"])
                for window in windows:
                    page = browser.new_page(viewport={"width": 800, "height": 480})
                    page.goto(f"{url}/?kiosk=1&window={window}")
                    page.wait_for_function("document.querySelector('#connection').dataset.state === 'live'")
                    time.sleep(3.0)  # connected, history in, charts made
                    cdp = page.context.new_cdp_session(page)
                    cdp.send("Performance.enable")
                    first = _metrics(cdp)
                    began = time.monotonic()
                    time.sleep(seconds)
                    last = _metrics(cdp)
                    wall = time.monotonic() - began
                    got = page.evaluate("[...window.livedash.channels.values()].map(ch => ch.samples.length)")
                    results.append({
                        "window": window, "seconds": round(wall, 1), "channels": 4, "rate_hz": 20,
                        "task_pct": 100 * (last["TaskDuration"] - first["TaskDuration"]) / wall,
                        "script_pct": 100 * (last["ScriptDuration"] - first["ScriptDuration"]) / wall,
                        "layout_pct": 100 * ((last["LayoutDuration"] + last["RecalcStyleDuration"])
                                             - (first["LayoutDuration"] + first["RecalcStyleDuration"])) / wall,
                        "heap_mb": last["JSHeapUsedSize"] / 1024 / 1024, "samples_held": got})
                    page.close()
                browser.close()
            return results
        finally:
            server.terminate()
            server.wait(10)


def _metrics(cdp) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def _wait_for(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {url}") from None
            time.sleep(0.1)


def page_md(rows: list[dict]) -> list[str]:
    out = ["| window (4 channels at 20 Hz, 800x480) | main thread busy | of it script | style+layout | JS heap |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['window']} ({r['seconds']:g} s) | {r['task_pct']:.1f} % | {r['script_pct']:.1f} % | "
                   f"{r['layout_pct']:.1f} % | {r['heap_mb']:.1f} MB |")
    return out


def memory_in(server_python: str, hours: float) -> dict:
    """aggregates_memory() in the server's interpreter, which has the app's packages."""
    out = subprocess.run([server_python, "-m", "bench.dashboard", "memory", str(hours)], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory"]:
        print(json.dumps(aggregates_memory(hours=float(sys.argv[2]))))
