"""Socket.IO events: what a client may say, checked before the hub hears it.

Viewers are read-only. A client may choose its channels (at connect, through its auth
data, or later with subscribe/unsubscribe); anything else it sends is refused with a
reason in the acknowledgement, and the server goes on serving everyone else. Refusals are
logged once per client and kind, so a misbehaving client cannot fill the SD card.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO

from .aggregates import window_s

log = logging.getLogger(__name__)

EVENTS_PER_S = 5.0  # a viewer asks for channels now and then, not in a loop
EVENTS_BURST = 20


class Refused(Exception):
    """A client's request that is not done; the message is its reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


class Gate:
    """What each client may still do: a small token bucket, and what was already logged about it."""

    def __init__(self, livedash):
        self.hub = livedash.hub
        self.server = livedash.config.server
        self._tokens: dict[str, tuple[float, float]] = {}  # sid -> (tokens, when)
        self._logged: set[tuple[str, str]] = set()

    def admit(self, address: str) -> None:
        if len(self.hub.clients) >= self.server.max_clients:
            raise Refused("full", f"server full ({self.server.max_clients} clients)")
        if self.hub.clients_from(address) >= self.server.max_clients_per_address:
            raise Refused("per-address", f"too many connections from {address} "
                                         f"({self.server.max_clients_per_address})")

    def spend(self, sid: str) -> None:
        now = time.monotonic()
        tokens, then = self._tokens.get(sid, (EVENTS_BURST, now))
        tokens = min(EVENTS_BURST, tokens + (now - then) * EVENTS_PER_S)
        if tokens < 1:
            raise Refused("rate", f"too many requests (at most {EVENTS_PER_S:g} a second)")
        self._tokens[sid] = (tokens - 1, now)

    def channel_names(self, value: Any) -> list[str]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise Refused("bad-argument", "expected a channel name or a list of channel names")
        unknown = [n for n in names if n not in self.hub.channels]
        if unknown:
            raise Refused("unknown-channel", f"no such channel: {', '.join(sorted(set(unknown)))[:200]}")
        return list(dict.fromkeys(names))

    def window(self, value: Any) -> str:
        try:
            window_s(value)
        except ValueError as e:
            raise Refused("bad-argument", str(e)) from None
        return value

    def note(self, sid: str, refused: Refused) -> dict[str, Any]:
        if (sid, refused.kind) not in self._logged:
            self._logged.add((sid, refused.kind))
            log.info("client %s: refused (%s): %s", sid, refused.kind, refused)
        return {"ok": False, "error": str(refused)}

    def forget(self, sid: str) -> None:
        self._tokens.pop(sid, None)
        self._logged = {entry for entry in self._logged if entry[0] != sid}


def register(socketio: SocketIO, livedash) -> None:
    hub = livedash.hub
    gate = Gate(livedash)

    @socketio.on("connect")
    def connect(auth=None):
        address = request.remote_addr or "unknown"
        try:
            gate.admit(address)
            auth = auth if isinstance(auth, dict) else {}
            wanted = gate.channel_names(auth["channels"]) if "channels" in auth else None
            window = gate.window(auth["window"]) if "window" in auth else None
        except Refused as e:
            log.info("client %s refused: %s", address, e)
            raise ConnectionRefusedError(str(e))
        hub.connect(request.sid, address, wanted, window)

    @socketio.on("disconnect")
    def disconnect(reason=None):
        hub.disconnect(request.sid, reason)
        gate.forget(request.sid)

    def handler(change):
        def handle(names=None):
            try:
                gate.spend(request.sid)
                names = gate.channel_names(names)
            except Refused as e:
                return gate.note(request.sid, e)
            change(request.sid, names)
            return {"ok": True, "channels": names}
        return handle

    socketio.on_event("subscribe", handler(hub.subscribe))
    socketio.on_event("unsubscribe", handler(hub.unsubscribe))

    @socketio.on("window")
    def window(name=None):
        """The page's time window changed: it gets the aggregates that window needs."""
        try:
            gate.spend(request.sid)
            name = gate.window(name)
        except Refused as e:
            return gate.note(request.sid, e)
        hub.set_window(request.sid, name)
        return {"ok": True, "window": name}

    @socketio.on("*")
    def unknown(event, *args):
        return gate.note(request.sid, Refused("unknown-event", f"unknown event {str(event)[:64]!r}"))
