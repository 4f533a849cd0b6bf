"""Socket.IO events: what a client may say, checked before the hub hears it.

Viewers are read-only. A client may choose its channels (at connect, through its auth
data, or later with subscribe/unsubscribe); anything else it sends is refused with a
reason in the acknowledgement, and the server goes on serving everyone else.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO

log = logging.getLogger(__name__)


class BadRequest(Exception):
    pass


def register(socketio: SocketIO, livedash) -> None:
    hub = livedash.hub

    def channel_names(value: Any) -> list[str]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest("expected a channel name or a list of channel names")
        unknown = [n for n in names if n not in hub.channels]
        if unknown:
            raise BadRequest(f"no such channel: {', '.join(sorted(set(unknown)))[:200]}")
        return list(dict.fromkeys(names))

    @socketio.on("connect")
    def connect(auth=None):
        wanted = None
        if isinstance(auth, dict) and "channels" in auth:
            try:
                wanted = channel_names(auth["channels"])
            except BadRequest as e:
                log.info("client %s refused: %s", request.sid, e)
                raise ConnectionRefusedError(str(e))
        hub.connect(request.sid, wanted)

    @socketio.on("disconnect")
    def disconnect(reason=None):
        hub.disconnect(request.sid)

    @socketio.on("subscribe")
    def subscribe(names=None):
        try:
            names = channel_names(names)
        except BadRequest as e:
            return {"ok": False, "error": str(e)}
        hub.subscribe(request.sid, names)
        return {"ok": True, "channels": names}

    @socketio.on("unsubscribe")
    def unsubscribe(names=None):
        try:
            names = channel_names(names)
        except BadRequest as e:
            return {"ok": False, "error": str(e)}
        hub.unsubscribe(request.sid, names)
        return {"ok": True, "channels": names}

    @socketio.on("*")
    def unknown(event, *args):
        return {"ok": False, "error": f"unknown event {str(event)[:64]!r}"}
