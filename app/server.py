"""Running the app: bind, start sampling, serve until SIGTERM, then stop in order."""

from __future__ import annotations

import logging
import signal
import socket

from flask import Flask

log = logging.getLogger(__name__)

TICK_S = 0.25  # how often the main loop looks up: stop requested? still healthy?


class StopRequested:
    """Set by SIGTERM or SIGINT; the main loop sees it on its next tick."""

    def __init__(self) -> None:
        self.signal: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __bool__(self) -> bool:
        return self.signal is not None


def start(app: Flask) -> socket.socket:
    """Bind the port, start sampling, serve in the background; returns the bound socket."""
    livedash = app.extensions["livedash"]
    runtime, server = livedash.runtime, livedash.config.server
    sock = runtime.listen(server.host, server.port)
    livedash.start()
    runtime.serve(sock, app)
    log.info("serving on http://%s:%d/ (%s)", server.host, sock.getsockname()[1], runtime.name)
    return sock


def stop(app: Flask) -> None:
    livedash = app.extensions["livedash"]
    livedash.stop()
    livedash.runtime.stop_serving()


def serve(app: Flask) -> None:
    """Run until SIGTERM or SIGINT."""
    stop_requested = StopRequested()
    runtime = app.extensions["livedash"].runtime
    start(app)
    while not stop_requested:
        runtime.sleep(TICK_S)
    log.info("stopping (%s)", signal.Signals(stop_requested.signal).name)
    stop(app)
    log.info("stopped")
