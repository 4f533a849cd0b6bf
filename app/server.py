"""Running the app: bind, start sampling, serve until SIGTERM, then stop in order.

The main loop is also the service's conscience: each tick it looks for anything stuck and
only then feeds systemd's watchdog. Under eventlet it is a green thread, so a blocked event
loop stops it too: the pings stop exactly when serving stops.
"""

from __future__ import annotations

import logging
import signal
import socket
import time

from flask import Flask

from .systemd import Notifier

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


class Supervisor:
    """Each tick: find what is stuck, keep systemd's STATUS current, feed the watchdog if all is alive."""

    def __init__(self, livedash, notifier: Notifier):
        self.livedash, self.notifier = livedash, notifier
        self.pinged_at = 0.0
        self.reported: list[str] = []

    def tick(self, now: float) -> None:
        problems = self.livedash.problems(now)
        if problems != self.reported:
            for problem in problems:
                log.error("%s: withholding the watchdog", problem)
            self.reported = problems
        self.notifier.status("; ".join(problems) if problems else self.livedash.status_line())
        interval = self.notifier.watchdog_s
        if interval and not problems and now - self.pinged_at >= interval:
            self.notifier.watchdog()
            self.pinged_at = now
        self.livedash.save_history_if_due(now)


def start(app: Flask) -> socket.socket:
    """Bind the port, start sampling, serve in the background; returns the bound socket."""
    livedash = app.extensions["livedash"]
    runtime, server = livedash.runtime, livedash.config.server
    sock = runtime.listen(server.host, server.port)
    livedash.start()
    runtime.serve(sock, app, client_timeout_s=server.client_timeout_s, max_clients=server.max_clients + 64)
    log.info("serving on http://%s:%d/ (%s)", server.host, sock.getsockname()[1], runtime.name)
    return sock


def stop(app: Flask) -> None:
    livedash = app.extensions["livedash"]
    livedash.stop()
    livedash.runtime.stop_serving()


def serve(app: Flask, notifier: Notifier | None = None) -> None:
    """Run until SIGTERM or SIGINT, telling systemd how it goes."""
    stop_requested = StopRequested()
    livedash = app.extensions["livedash"]
    notifier = notifier or Notifier()
    supervisor = Supervisor(livedash, notifier)
    start(app)
    notifier.ready(livedash.status_line())  # after bind and after every sampler started
    while not stop_requested:
        livedash.runtime.sleep(TICK_S)
        supervisor.tick(time.monotonic())
    log.info("stopping (%s)", signal.Signals(stop_requested.signal).name)
    notifier.stopping()
    stop(app)
    log.info("stopped")
