"""The one app object: everything a running livedash owns, started and stopped together."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask_socketio import SocketIO

from .config import Config
from .hub import Hub
from .pins import Pins
from .runtime import runtime_for
from .sampler import Sampler
from .sources import open_source

log = logging.getLogger(__name__)


class Livedash:
    """Config, hub, samplers and pins of one app; ``start`` once, ``stop`` once.

    Sampling starts with the app, never with the first client, so the history is there
    when the first page opens and a reconnecting page finds no hole.
    """

    def __init__(self, config: Config, socketio: SocketIO):
        self.config = config
        self.socketio = socketio
        self.runtime = runtime_for(config.server.async_mode)
        server = socketio.server
        self.hub = Hub(config.channels, config.server.history, emit=socketio.emit,
                       enter_room=lambda sid, room: server.enter_room(sid, room),
                       leave_room=lambda sid, room: server.leave_room(sid, room))
        self.pins = Pins(config.gpio)
        self.samplers = [
            Sampler(channel, self._opener(channel), self.hub.post) for channel in config.channels
        ]
        self.started_at: float | None = None  # monotonic
        self._pump = None

    def _opener(self, channel):
        return lambda: open_source(channel, self.pins.factory_for(channel))

    def start(self) -> None:
        if self.started_at is not None:
            raise RuntimeError("livedash is already started")
        self.started_at = time.monotonic()
        self._pump = self.runtime.spawn(self.hub.pump, self.runtime.wait_for)
        for sampler in self.samplers:
            sampler.start()
        log.info("sampling %d channel(s): %s", len(self.samplers),
                 ", ".join(f"{s.channel.name} ({s.channel.source}, {s.channel.rate_hz:g} Hz)" for s in self.samplers))

    def stop(self) -> None:
        """Tell the clients, stop sampling, let go of the pins."""
        if self.started_at is None:
            return
        self.socketio.emit("bye", {"reason": "server stopping"})
        for sampler in self.samplers:
            sampler.stop()
        self.pins.close()
        self.hub.close_inbox()
        self.socketio.server.eio.disconnect()
        self.started_at = None

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        channels = self.hub.health(now)
        faults = [name for name, c in channels.items() if c["status"] == "fault"]
        return {
            "status": "ok" if not faults else "degraded",
            "uptime_s": round(now - self.started_at, 3) if self.started_at is not None else 0.0,
            "async_mode": self.runtime.name,
            "clients": len(self.hub.clients),
            "channels": channels,
        }
