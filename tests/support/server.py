"""A real livedash: as a separate process on a free port, or in this process (threading mode).

The process is what users run (``python -m app``); the in-process one lets a test reach the
mock pins of a running server through its Livedash object, which is how gpiozero's
MockFactory is meant to be driven.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class ServerProcess:
    """``python -m app`` with a config file of the test's, on 127.0.0.1 and a free port
    (or *command*, e.g. an installed ``livedash``, run in *cwd*)."""

    def __init__(self, tmp_path: Path, config: str, *, args: tuple[str, ...] = (), env: dict | None = None,
                 port: int | None = None, command: tuple[str, ...] = (sys.executable, "-m", "app"),
                 cwd: Path = REPO):
        self.command, self.cwd = command, cwd
        self.port = port or free_port()
        self.config_path = tmp_path / "livedash.toml"
        self.config_path.write_text(config)
        self.state_dir = tmp_path / "state"
        self.log_path = tmp_path / f"server-{self.port}.log"
        self.args = ("--config", str(self.config_path), "--host", "127.0.0.1", "--port", str(self.port),
                     "--state-dir", str(self.state_dir), *args)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
        self.env.update(env or {})
        self.env["PYTHONFAULTHANDLER"] = "1"  # a hang at stop is reported with every thread's stack
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "ServerProcess":
        RUNNING.add(self)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen([*self.command, *self.args], cwd=self.cwd, env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            wait_until(self.ready, timeout=15, what=f"livedash on port {self.port}")
        return self

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"livedash exited with {self.process.returncode}:\n{self.output()}")
        try:
            return bool(get_json(self.url + "/healthz", timeout=1))
        except OSError:
            return False

    def health(self) -> dict:
        return get_json(self.url + "/healthz")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        RUNNING.discard(self)
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # SIGABRT: faulthandler (PYTHONFAULTHANDLER) prints where every thread is stuck.
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            raise AssertionError(f"livedash did not exit {timeout:g} s after {signal.Signals(sig).name}:\n"
                                 f"{self.output()[-6000:]}") from None
        finally:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


RUNNING: set[ServerProcess] = set()  # started, not yet stopped: tests/conftest.py ends them after each test


class InProcessServer:
    """The real app on a real port in this process, threading mode, so a test can reach its pins."""

    def __init__(self, config_text: str, tmp_path: Path):
        from app import create_app
        from app.config import load

        path = tmp_path / "livedash.toml"
        path.write_text(config_text)
        self.config = load(str(path), environ={}, overrides={
            "server.host": "127.0.0.1", "server.port": free_port(), "server.async_mode": "threading",
            "server.state_dir": str(tmp_path / "state")})
        self.app = create_app(self.config)
        self.livedash = self.app.extensions["livedash"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.server.port}"

    def __enter__(self):
        from app import server

        server.start(self.app)
        return self

    def __exit__(self, *exc):
        from app import server

        server.stop(self.app)


class Recorder:
    """A real python-socketio client that keeps every event it receives, with its arrival time."""

    def __init__(self, url: str, *, auth: dict | None = None, transports=("websocket",)):
        import socketio

        self.events: list[tuple[float, str, Any]] = []  # (arrival, event, data)
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on("*", self._record)
        self.client.on("connect_error", lambda data=None: self._record("connect_error", data))
        self.url, self.auth, self.transports = url, auth, list(transports)

    def _record(self, event, data=None):
        with self.lock:
            self.events.append((time.time() * 1000, event, data))

    def connect(self) -> "Recorder":
        self.client.connect(self.url, auth=self.auth, transports=self.transports, wait_timeout=10)
        return self

    def disconnect(self) -> None:
        # websocket-client's close() waits up to 3 s for the server's close frame, which the
        # client's own read loop has usually taken already (seen against the threading server):
        # a wasted 3 s per client, not something the server does wrong.
        ws = getattr(self.client.eio, "ws", None)
        if ws is not None:
            ws.close = functools.partial(ws.close, timeout=0.2)
        self.client.disconnect()

    def of(self, event: str) -> list[Any]:
        with self.lock:
            return [data for _, name, data in self.events if name == event]

    def samples(self, channel: str) -> list[dict]:
        """Live samples in arrival order, whether they came alone or in a frame (``samples``)."""
        return [sample for _, sample in self.arrivals(channel)]

    def arrivals(self, channel: str) -> list[tuple[float, dict]]:
        """(arrival time, sample) for each live sample of *channel*."""
        out = []
        with self.lock:
            for at, name, data in self.events:
                if name == "sample" and data["channel"] == channel:
                    out.append((at, data))
                elif name == "samples" and data["channel"] == channel:
                    out.extend((at, {"channel": channel, **sample}) for sample in data["samples"])
        return out

    def call(self, event: str, data: Any = None, timeout: float = 5.0):
        return self.client.call(event, data, timeout=timeout)

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.disconnect()
