"""The systemd side of sd_notify, for tests: an AF_UNIX datagram socket that keeps every message."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class NotifySocket:
    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []  # (monotonic arrival, fields)
        self.on_message = None  # called on the receiving thread, e.g. to probe the port at READY=1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))
            if self.on_message:
                self.on_message(fields)

    def with_key(self, key: str) -> list[tuple[float, str]]:
        return [(at, f[key]) for at, f in list(self.messages) if key in f]

    def statuses(self) -> list[str]:
        return [s for _, s in self.with_key("STATUS")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
