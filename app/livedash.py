"""The one app object: everything a running livedash owns, started and stopped together."""

from __future__ import annotations

import importlib.metadata
import logging
import time
from typing import Any

from flask_socketio import SocketIO

from .config import Config
from .fanout import Fanout
from .hub import Hub
from .metrics import Counts, registry_for
from .pins import Pins
from .runtime import runtime_for
from .sampler import Sampler
from .sensors import KINDS
from .sources import open_source
from .state import load_history, save_history

log = logging.getLogger(__name__)

PUMP_STUCK_S = 5.0  # samples waiting this long for the hub means the hub is stuck


def installed_version() -> str | None:
    """The installed wheel's version, e.g. 0.1.0+<checksum of its sources> (scripts/build-wheel):
    which code a Pi runs. None when run from a checkout."""
    try:
        return importlib.metadata.version("livedash")
    except importlib.metadata.PackageNotFoundError:
        return None


class Livedash:
    """Config, hub, samplers and pins of one app; ``start`` once, ``stop`` once.

    Sampling starts with the app, never with the first client, so the history is there
    when the first page opens and a reconnecting page finds no hole.
    """

    def __init__(self, config: Config, socketio: SocketIO):
        self.config = config
        self.socketio = socketio
        self.runtime = runtime_for(config.server.async_mode)
        self.version = installed_version()
        server = socketio.server
        self.fanout = Fanout(socketio, config.server.async_mode, config.server.send_backlog_bytes)
        self.fanout.install()
        self.hub = Hub(config.channels, config.server.history, emit=self.fanout.emit,
                       enter_room=lambda sid, room: server.enter_room(sid, room),
                       leave_room=lambda sid, room: server.leave_room(sid, room),
                       frame_hz=config.server.max_frame_hz)
        self.counts = Counts()
        self.hub.observers.append(self.counts)
        self.mqtt = None  # the broker link, with [mqtt] host set; it feeds the mqtt channels too
        if config.mqtt.enabled:
            from .mqtt import MqttLink  # paho only where it is used

            self.mqtt = MqttLink(config.mqtt, config.channels, self.hub)
            self.hub.observers.append(self.mqtt)
        self.pins = Pins(config.gpio)
        self.samplers = [
            Sampler(channel, self._opener(channel), self.hub.post)
            for channel in config.channels if not KINDS[channel.source].fed  # mqtt: fed by the broker, not read
        ]
        self.metrics = registry_for(self)
        self.history_path = config.resolved_state_dir() / "history.json"
        self.started_at: float | None = None  # monotonic
        self.saved_at = 0.0
        self._pump = None  # the hub's pump task, once started

    def _opener(self, channel):
        return lambda: open_source(channel, self.pins.factory_for(channel))

    def start(self) -> None:
        if self.started_at is not None:
            raise RuntimeError("livedash is already started")
        saved = load_history(self.history_path)
        # After a crash the file may lag behind what pages were sent: number on past that.
        lagging_s = None if saved.get("clean", True) else max(0.0, time.time() - saved.get("saved_at", 0.0))
        self.hub.restore(saved.get("channels", {}), lagging_s)
        self.started_at = self.saved_at = time.monotonic()
        self._pump = self.runtime.spawn(self.hub.pump, self.runtime.wait_for)
        for sampler in self.samplers:
            sampler.start()
        if self.mqtt is not None:
            self.mqtt.start()
        log.info("sampling %d channel(s): %s", len(self.samplers),
                 ", ".join(f"{s.channel.name} ({s.channel.source}, {s.channel.rate_hz:g} Hz)" for s in self.samplers)
                 or "none but mqtt")

    def stop(self) -> None:
        """Tell the clients, stop sampling, let go of the pins, save the history."""
        if self.started_at is None:
            return
        self.socketio.emit("bye", {"reason": "server stopping"})
        for sampler in self.samplers:
            sampler.stop()
        self.pins.close()
        self.hub.close_inbox()
        self.save_history(clean=True)
        if self.mqtt is not None:
            self.runtime.wait_for(self.mqtt.stop)  # joins paho's thread: not in the event loop
        self._close_connections()
        self.started_at = None

    def _close_connections(self) -> None:
        """Close every connection without waiting for it to flush.

        Engine.IO's own disconnect-all waits for each client to take its last packets; a
        long-polling client that has just gone away never does, and the stop would hang
        until systemd kills us (seen under load). The pages were told ("bye") already.
        """
        eio = self.socketio.server.eio
        for connection in list(eio.sockets.values()):
            connection.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)

    def send_backlog(self) -> int:
        """Packets queued for the pages and not yet written, all clients together."""
        return sum(connection.queue.qsize() for connection in list(self.socketio.server.eio.sockets.values()))

    def save_history(self, clean: bool = False) -> None:
        """Save the rings; the write (fsync on an SD card) runs off the event loop."""
        snapshot = self.hub.snapshot()
        self.saved_at = time.monotonic()
        try:
            self.runtime.wait_for(lambda: save_history(self.history_path, snapshot, clean))
        except OSError as e:  # a full or read-only disk costs the saved history, not the service
            log.error("could not save history to %s: %s", self.history_path, e)

    def save_history_if_due(self, now: float) -> None:
        if now - self.saved_at >= self.config.server.save_interval_s:
            self.save_history()

    def problems(self, now: float) -> list[str]:
        """What is stuck or dead, as opposed to faulty: anything here means systemd should restart us.

        Every thread that should be alive is looked at: a sampler, the hub's pump, the web
        server, the simulator. One that has ended is as stuck as one that hangs."""
        found = [problem for s in self.samplers if (problem := s.problem(now))]
        waiting = self.hub.backlog()
        if self._pump is not None and not self.runtime.alive(self._pump):
            found.append("hub has stopped")
        elif waiting and now - self.hub.pumped_at > PUMP_STUCK_S:
            found.append(f"hub is stuck with {waiting} samples waiting")
        if not self.runtime.serving():
            found.append("web server has stopped")
        if self.pins.simulator is not None and not self.pins.simulator.alive():
            found.append("simulator has stopped")
        return found

    def status_line(self) -> str:
        """What ``systemctl status`` shows: faults first, then how many are fine and who watches."""
        channels = self.hub.channels.values()
        parts = [f"channel {c.name}: fault: {c.reason}" for c in channels if c.status == "fault"]
        parts += [f"channel {c.name}: {c.levels.level}" for c in channels if c.status == "ok" and c.levels.level != "ok"]
        if self.mqtt is not None and self.mqtt.state != "connected":
            parts.append(self.mqtt.summary())
        fine = sum(c.status == "ok" for c in channels)
        clients = len(self.hub.clients)
        parts.append(f"{fine} channel{'s' * (fine != 1)} ok, {clients} client{'s' * (clients != 1)}")
        return "; ".join(parts)

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        channels = self.hub.health(now)
        faults = [name for name, c in channels.items() if c["status"] == "fault"]
        health = {
            "status": "ok" if not faults else "degraded",
            "uptime_s": round(now - self.started_at, 3) if self.started_at is not None else 0.0,
            "async_mode": self.runtime.name,
            "version": self.version,
            "clients": len(self.hub.clients),
            "fanout": self.fanout.health(),
            "channels": channels,
        }
        if self.mqtt is not None:
            health["mqtt"] = {"summary": self.mqtt.summary(), **self.mqtt.health()}
            if self.mqtt.state != "connected":
                health["status"] = "degraded"
        return health
