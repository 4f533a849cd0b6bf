"""What publishing to MQTT costs: livedash with four channels at 50 Hz, with and without ``[mqtt]``.

A real Mosquitto (Debian's) on a free loopback port; livedash publishes every sample
(``max_rate_hz = 50``). The same process without ``[mqtt]`` is the baseline in the same run,
so the difference is MQTT's: paho's thread, the sender, JSON. Printed, not asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

CHANNELS = 4
RATE_HZ = 50.0


def channels() -> str:
    return "".join(f'\n[[channels]]\nname = "c{i}"\nsource = "random"\nrate_hz = {RATE_HZ:g}\n'
                   for i in range(CHANNELS))


def process_cpu_seconds(pid: int, tick: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def mqtt_cost(server_class, free_port, tick: int, workdir: Path, seconds: float, kind: str = "eventlet") -> dict:
    """CPU % of a core of livedash without and with publishing, and of the broker; messages a second."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
                    "log_dest none\n")
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {"channels": CHANNELS, "rate_hz": RATE_HZ, "seconds": seconds, "server": kind}
    try:
        time.sleep(0.5)
        for label, extra in (("without", ""), ("with", f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                                                      'topic_prefix = "livedash/bench"\nmax_rate_hz = 50\n')):
            server = server_class(kind, RATE_HZ, workdir / f"mqtt-{label}", f"mqtt-{label}",
                                  config=extra + channels())
            try:
                time.sleep(2.0)  # connected, warm
                health = lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5))
                published_before = health().get("mqtt", {}).get("published", 0)
                cpu, broker_cpu = server.cpu_seconds(), process_cpu_seconds(broker.pid, tick)
                started = time.monotonic()
                time.sleep(seconds)
                took = time.monotonic() - started
                out[f"cpu_pct_{label}"] = 100 * (server.cpu_seconds() - cpu) / took
                if label == "with":
                    out["broker_cpu_pct"] = 100 * (process_cpu_seconds(broker.pid, tick) - broker_cpu) / took
                    h = health()["mqtt"]
                    out["published_per_s"] = (h["published"] - published_before) / took
                    out["dropped"] = h["dropped"]
            finally:
                server.stop()
    finally:
        broker.terminate()
        broker.wait(10)
    out["cost_pct"] = out["cpu_pct_with"] - out["cpu_pct_without"]
    return out


def line(r: dict) -> str:
    return (f"MQTT: {r['channels']} channels at {r['rate_hz']:g} Hz published ({r['published_per_s']:.0f} messages/s, "
            f"{r['dropped']} dropped): livedash ({r['server']}) {r['cpu_pct_with']:.1f} % CPU against "
            f"{r['cpu_pct_without']:.1f} % without [mqtt] (+{r['cost_pct']:.1f} % of a core); "
            f"mosquitto {r['broker_cpu_pct']:.1f} %; {r['seconds']:g} s each")
