"""Broadcast: one Socket.IO packet, one WebSocket frame, the same bytes written to every page.

python-engineio gives each client its own queue and writer green thread, so each message
to each client costs a queue put, a wake-up, a timer, a frame built for that client alone
and a send. Here an emit to a room encodes the packet and the frame once and writes them
straight into each subscribed client's socket with a non-blocking send. Node's socket.io
does the same since 4.6 (a precomputed frame per broadcast), as does the ``websockets``
library's ``broadcast()``.

Order per client holds because every byte a fast client is sent passes through its
``Connection``: engineio's own frames (the connect, history, acks, pings, the close) are
routed there too, by replacing its WebSocket's ``_send``. A broadcast goes behind anything
engineio still has queued for that client (it then takes the normal path itself), and
behind the client's backlog. What the kernel does not take stays in that client's
backlog, written when its socket is writable again; a client more than
``send_backlog_bytes`` behind is let go and gets history when it returns, so it never
holds up anyone else. What counts towards that limit is live data (broadcast frames) piled
up since the backlog was last empty: the history a page asks for at connect can be larger
than the limit, and a page that takes it at once is not behind.

The fast path is for WebSocket clients under eventlet. Long-polling clients, threading
mode and any library version this was not written against take engineio's normal path.
Everything that reaches into python-engineio and eventlet is in this module; ``problems()``
says whether those internals are still what it expects (tests/test_fanout.py checks it).
"""

from __future__ import annotations

import importlib.metadata
import logging
import socket
import struct
from collections import deque
from typing import Any, Callable

log = logging.getLogger(__name__)

# The versions whose internals this module was written against (requirements.txt pins them).
WRITTEN_AGAINST = {"python-engineio": "4.15.1", "python-socketio": "5.18.1", "eventlet": "0.41.3"}
DROPPED = "send backlog full"  # the disconnect reason of a client let go for being too far behind
# The kernel's send buffer per WebSocket, fixed: left to autotuning it grows to megabytes for a
# page that took a big history once, and a stalled page would hold that much before its
# backlog even starts. Fixed, a page is held at most this (Linux doubles it for its own
# bookkeeping) plus send_backlog_bytes; 32 KiB still carries 1.6 MB/s at a 20 ms round trip.
KERNEL_SEND_BUFFER = 32 * 1024


def frame(text: str) -> bytes:
    """An unmasked, final RFC 6455 text frame, as a server sends it."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def problems() -> list[str]:
    """What differs from the library internals this module relies on; empty when all is as written."""
    found = [f"{name} is {importlib.metadata.version(name)}, fan-out was written against {want}"
             for name, want in WRITTEN_AGAINST.items() if importlib.metadata.version(name) != want]
    try:
        import eventlet.hubs
        import eventlet.websocket
        from engineio import packet as eio_packet
        from engineio.async_drivers import eventlet as eio_eventlet
        from engineio.socket import Socket
        from socketio.base_manager import BaseManager
    except ImportError as e:
        return found + [f"cannot import: {e}"]
    needed = [
        (eio_eventlet, "_async"), (eio_eventlet, "WebSocketWSGI"), (eio_eventlet.WebSocketWSGI, "__call__"),
        (Socket, "_websocket_handler"), (Socket, "send"), (Socket, "close"),
        (eio_packet, "MESSAGE"), (eio_packet, "Packet"),
        (eventlet.websocket.RFC6455WebSocket, "_send"), (eventlet.websocket.RFC6455WebSocket, "send"),
        (eventlet.hubs, "trampoline"), (BaseManager, "get_participants"), (BaseManager, "eio_sid_from_sid"),
    ]
    found += [f"{getattr(owner, '__name__', owner)} has no {name}" for owner, name in needed
              if not hasattr(owner, name)]
    if "websocket" not in getattr(eio_eventlet, "_async", {}):
        found.append("engineio's eventlet driver has no 'websocket' entry")
    # What engineio's Socket sets per instance and the fast path reads.
    probe = Socket.__new__(Socket)
    from engineio.base_socket import BaseSocket
    BaseSocket.__init__(probe, _ProbeServer(), "probe")
    found += [f"engineio Socket has no attribute {a}" for a in ("queue", "upgraded", "closing", "closed", "sid")
              if not hasattr(probe, a)]
    if not hasattr(probe.queue, "qsize"):
        found.append("engineio's queue has no qsize()")
    return found


class _ProbeServer:
    """Just enough of an engineio server to build a Socket and look at its attributes."""

    def create_queue(self):
        import queue
        return queue.Queue()


class Connection:
    """One WebSocket client's outgoing byte stream: sent at once while the kernel takes it, else kept in order."""

    def __init__(self, fanout: "Fanout", eio_socket, ws):
        self.fanout, self.eio_socket, self.ws = fanout, eio_socket, ws
        self.green = ws.socket  # eventlet's GreenSocket; .fd is the real socket, non-blocking
        self.raw = self.green.fd
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
        self._raw_send = self.raw.send
        self.backlog = bytearray()
        self.head = 0  # where in the stream (bytes since the connection began) the backlog starts
        self.asked: deque[tuple[int, int]] = deque()  # (start, end) in the stream of the backlog's non-live bytes
        self.limit = fanout.backlog_bytes
        self.dropped = False
        self.drainer = None

    def behind(self) -> int:
        """Bytes of live frames in the backlog: what the limit is about (history, acks and pings are asked for)."""
        asked = sum(end - max(start, self.head) for start, end in self.asked)
        return len(self.backlog) - asked

    def write(self, data: bytes, live: bool = False) -> None:
        """All bytes to this client come here, in the order they are to arrive; never blocks.

        *live*: a broadcast frame, the kind of bytes that count towards the backlog limit."""
        if self.dropped:
            return
        if not self.backlog:
            try:
                sent = self._raw_send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the connection broke; its reader notices and engineio closes it
                self.dropped = True
                return
            self.head += sent
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
            self.drainer = self.fanout.spawn(self._drain)
        if not live:
            tail = self.head + len(self.backlog)
            self.asked.append((tail, tail + len(data)))
        self.backlog += data
        if live and self.behind() > self.limit:
            self.drop()

    def _drain(self) -> None:
        """While there is a backlog: wait until the socket is writable, write what it takes."""
        import eventlet.hubs

        try:
            while self.backlog and not self.dropped:
                eventlet.hubs.trampoline(self.raw, write=True)
                try:
                    sent = self._raw_send(self.backlog)
                except (BlockingIOError, InterruptedError):
                    continue
                del self.backlog[:sent]
                self.head += sent
                while self.asked and self.asked[0][1] <= self.head:
                    self.asked.popleft()
        except Exception as e:  # closed under us (IOClosed, OSError): the connection is ending anyway
            log.debug("client %s: backlog not sent: %s", self.eio_socket.sid, e)
            self.dropped = True
        finally:
            self.drainer = None

    def drop(self) -> None:
        """Too far behind: let it go now (reset, nothing more is sent); it resyncs from history."""
        waiting, behind = len(self.backlog), self.behind()
        self.dropped = True
        self.backlog, self.asked = bytearray(), deque()
        log.info("client %s let go (%s): %d bytes of live frames waiting, more than send_backlog_bytes "
                 "(%d); %d bytes in all", self.eio_socket.sid, DROPPED, behind, self.limit, waiting)
        try:  # a reset, not a FIN behind a full buffer: the kernel lets go of its bytes too
            self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.fanout.spawn(self.eio_socket.close, False, True, DROPPED)

    def end(self) -> None:
        self.dropped = True
        drainer, self.drainer = self.drainer, None
        if drainer is not None:
            drainer.kill()


class Fanout:
    """The emits of the hub go through here: to every subscribed client, the same bytes, from one place."""

    def __init__(self, socketio, async_mode: str, backlog_bytes: int):
        self.socketio = socketio
        self.server = socketio.server  # python-socketio's
        self.backlog_bytes = backlog_bytes
        self.connections: dict[str, Connection] = {}  # engineio sid -> its WebSocket's byte stream
        self.enabled = False
        if async_mode == "eventlet":
            found = problems()
            if found:
                log.warning("broadcast fast path off, engineio's normal path instead: %s", "; ".join(found))
            else:
                self.enabled = True
        self._installed = False

    def spawn(self, fn: Callable, *args: Any):
        import eventlet
        return eventlet.spawn(fn, *args)

    def install(self) -> None:
        """Route every new WebSocket's sends through a Connection (engineio makes its server lazily)."""
        if not self.enabled or self._installed:
            return
        from engineio.async_drivers import eventlet as eio_eventlet

        eio = self.server.eio
        fanout = self

        class WebSocketWSGI(eio_eventlet.WebSocketWSGI):
            def __init__(self, handler, server):
                super().__init__(fanout._handler(handler), server)

        eio._async = dict(eio._async, websocket=WebSocketWSGI)  # this server's copy; the module's stays
        self._installed = True

    def _handler(self, handler: Callable) -> Callable:
        """Wrap engineio's per-connection WebSocket handler (a bound method of its Socket)."""
        eio_socket = handler.__self__

        def handle(ws):
            connection = Connection(self, eio_socket, ws)
            ws._send = connection.write
            self.connections[eio_socket.sid] = connection
            try:
                return handler(ws)
            finally:
                if self.connections.get(eio_socket.sid) is connection:
                    del self.connections[eio_socket.sid]
                connection.end()
        return handle

    def health(self) -> dict[str, Any]:
        """For /healthz: which path broadcasts take, and how many pages are behind by how much."""
        behind = [c for c in self.connections.values() if c.backlog]
        return {"path": "broadcast" if self.enabled else "normal", "websocket_clients": len(self.connections),
                "clients_behind": len(behind), "backlog_bytes": sum(len(c.backlog) for c in behind)}

    def emit(self, event: str, data: Any, to: str | None = None) -> None:
        """Like SocketIO.emit (default namespace, no callback): to a room, a client, or everyone.

        To a room or everyone: the broadcast path, live frames. To one client (the channel list,
        history): engineio's normal path, what that client asked for; later broadcasts queue behind it."""
        if not self.enabled or (to is not None and self.server.manager.eio_sid_from_sid(to, "/")):
            self.socketio.emit(event, data, to=to)
            return
        from engineio import packet as eio_packet

        encoded = self.server.packet_class(2, namespace="/", data=[event, data]).encode()  # 2: EVENT
        if not isinstance(encoded, str):  # binary attachments: not on the fast path
            self.socketio.emit(event, data, to=to)
            return
        bytes_ = frame("4" + encoded)  # 4: engineio's MESSAGE
        packet = None
        sockets, connections = self.server.eio.sockets, self.connections
        for _, eio_sid in self.server.manager.get_participants("/", to):
            eio_socket = sockets.get(eio_sid)
            if eio_socket is None:
                continue
            connection = connections.get(eio_sid)
            if (connection is not None and eio_socket.upgraded and not eio_socket.closing
                    and not eio_socket.queue.qsize()):
                connection.write(bytes_, True)
            else:  # polling, upgrading, or engineio still has something queued for it: behind that
                if packet is None:
                    packet = eio_packet.Packet(eio_packet.MESSAGE, encoded)
                eio_socket.send(packet)
