"""The load generator: N Socket.IO clients over WebSocket, all in one asyncio process.

Each client speaks Engine.IO 4 / Socket.IO 5 itself: ``GET /socket.io/?EIO=4&transport=websocket``,
``40`` to join the default namespace, ``3`` for every ping ``2``, and ``42[event, data]`` parsed
for ``sample`` (one sample) and ``samples`` (several in one frame). python-socketio's client
costs far too much per connection to play thousands of browsers on a 2-core machine.

Two transports, the same client logic:

- ``raw`` (default): a WebSocket client written on ``asyncio.Protocol``. One ``data_received``
  call parses every frame that came in one read, with no future or task per message, so
  thousands of messages a second cost little (about 5 us each under uvloop).
- ``aiohttp``: aiohttp's WebSocket client, one task per client; a cross-check of the raw
  client and of what a conventional asyncio client costs.

What is counted: the window is in the samples' own time ``t`` (the server's wall clock, the
same clock as ours on one machine), so a sample is in the window or not wherever it is when
the window closes; late ones are waited for (a grace period) and counted with their latency.
Per client and channel the last ``seq`` is kept: a seq at or below it is a duplicate (or out
of order); what was produced in the window is the seq range seen, so every missing seq, for
any client, is a loss.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from array import array

WS_PATH = "/socket.io/?EIO=4&transport=websocket"
NOT_YET = float("inf")
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on x86-64 and arm64 alike
TIMESPEC = struct.Struct("@ll")
RECV_BYTES = 256 * 1024


class Tally:
    """What all clients of one run saw. The window is [t0, t1) in sample time, epoch ms."""

    def __init__(self) -> None:
        self.t0 = self.t1 = NOT_YET  # nothing counts before the window is opened
        self.latencies = array("d")  # ms, arrival (kernel receive time) minus the sample's t
        self.handling = array("d")  # ms, from the kernel's receive to this process handling it
        self.delivered = 0  # samples in the window, each client's first copy of each seq
        self.duplicates = 0  # in the window, a seq at or below one the client already had
        self.seq_lo: dict[str, int] = {}  # per channel, the lowest and highest seq seen in the window
        self.seq_hi: dict[str, int] = {}
        self.frames = 0  # every WebSocket message, for the generator's cost per message
        self.connected = 0  # clients that got the namespace's "40"
        self.disconnects = 0  # connected clients that lost their connection before we closed it
        self.connect_errors = 0  # attempts that failed (each client tries a few times)
        self.refused: list[str] = []  # the server's reasons ("44" connect errors), a few
        self.stopping = False

    def open_window(self, seconds: float) -> None:
        self.t0 = time.time() * 1000
        self.t1 = self.t0 + seconds * 1000

    def produced(self) -> int:
        """Distinct seqs in the window, over all channels: seqs count 1, 2, 3... per channel."""
        return sum(self.seq_hi[c] - self.seq_lo[c] + 1 for c in self.seq_hi)


class Client:
    """One browser's Socket.IO session, whatever carries its WebSocket messages."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.last: dict[str, int] = {}  # channel -> last seq
        self.connected = False
        self.closed = False
        self.past_window = False  # a sample from after the window arrived: nothing earlier is still coming
        self.ready = asyncio.get_running_loop().create_future()  # namespace joined, or refused

    def send_text(self, text: str) -> None:  # pragma: no cover - per transport
        raise NotImplementedError

    def on_message(self, p: bytes, arrived: float, handled: float) -> None:
        """One Engine.IO packet that *arrived* (epoch ms) and is *handled* now."""
        tally = self.tally
        tally.frames += 1
        kind = p[:1]
        if kind == b"4":  # message: a Socket.IO packet
            sio = p[1:2]
            if sio == b"2":  # event
                start = 2 if p[2:3] == b"[" else p.index(b"[")  # past an ack id, if any
                event = json.loads(p[start:])
                name = event[0]
                if name == "sample":
                    data = event[1]
                    self.take(data["channel"], (data,), arrived, handled)
                elif name == "samples":
                    data = event[1]
                    self.take(data["channel"], data["samples"], arrived, handled)
            elif sio == b"0":
                if not self.connected:
                    self.connected = True
                    tally.connected += 1
                    if not self.ready.done():
                        self.ready.set_result(True)
            elif sio == b"4" or sio == b"1":  # refused, or disconnected by the server
                if len(tally.refused) < 5:
                    tally.refused.append(p[2:200].decode(errors="replace"))
                if not self.ready.done():
                    self.ready.set_result(False)
                self.close()
        elif kind == b"2":  # ping
            self.send_text("3")
        elif kind == b"0":  # open: join the default namespace
            self.send_text("40")
        elif kind == b"1":  # the server closes the session
            self.close()

    def take(self, channel: str, samples, arrived: float, handled: float) -> None:
        tally = self.tally
        t0, t1 = tally.t0, tally.t1
        last = self.last.get(channel, 0)
        for s in samples:
            seq, t = s["seq"], s["t"]
            if t < t0:
                if seq > last:
                    last = seq
                continue
            if t >= t1:
                self.past_window = True
                if seq > last:
                    last = seq
                continue
            if seq <= last:
                tally.duplicates += 1
                continue
            last = seq
            tally.delivered += 1
            tally.latencies.append(arrived - t)
            tally.handling.append(handled - arrived)
            lo = tally.seq_lo.get(channel)
            if lo is None or seq < lo:
                tally.seq_lo[channel] = seq
            if seq > tally.seq_hi.get(channel, 0):
                tally.seq_hi[channel] = seq
        self.last[channel] = last

    def lost_connection(self) -> None:
        if not self.closed:
            self.closed = True
            if self.connected and not self.tally.stopping:
                self.tally.disconnects += 1
        if not self.ready.done():
            self.ready.set_result(False)

    def close(self) -> None:  # pragma: no cover - per transport
        raise NotImplementedError


class RawClient(Client):
    """A WebSocket client on a bare non-blocking socket: frames parsed in place, many per read.

    Each read is ``recvmsg`` with SO_TIMESTAMPNS, so a message's arrival time is when the
    kernel took it in, not when this process got round to it: the latency measured is the
    server's (on loopback the kernel's receive happens inside the server's send), and the
    generator's own delay is measured apart (``Tally.handling``).
    """

    def __init__(self, tally: Tally, host: str, port: int, rcvbuf: int | None = None) -> None:
        super().__init__(tally)
        self.host, self.port = host, port
        self.rcvbuf = rcvbuf  # set before connecting, the TCP window stays that small
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.fragments: bytearray | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        try:
            await loop.sock_connect(sock, (self.host, self.port))
        except BaseException:
            sock.close()
            self.sock = None
            raise
        key = base64.b64encode(os.urandom(16)).decode()
        self._send((f"GET {WS_PATH} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                    "\r\n").encode())
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data, ancillary, _, _ = sock.recvmsg(RECV_BYTES, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", ()
        handled = time.time() * 1000
        if not data:
            self.close()
            return
        arrived = handled
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = TIMESPEC.unpack_from(value)
                arrived = sec * 1000 + nsec / 1e6
        self._feed(data, arrived, handled)

    def _feed(self, data: bytes, arrived: float, handled: float) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                if len(self.tally.refused) < 5:
                    self.tally.refused.append(bytes(buf[:80]).decode(errors="replace"))
                self.close()
                return
            del buf[:end + 4]
            self.upgraded = True
        i, n = 0, len(buf)
        while n - i >= 2:
            b0, length = buf[i], buf[i + 1] & 0x7F
            head = 2
            if length == 126:
                if n - i < 4:
                    break
                length, head = (buf[i + 2] << 8) | buf[i + 3], 4
            elif length == 127:
                if n - i < 10:
                    break
                length, head = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            end = i + head + length
            if end > n:
                break
            payload = bytes(buf[i + head:end])
            i = end
            opcode = b0 & 0x0F
            if opcode in (1, 2, 0):
                if not b0 & 0x80:  # a fragment: wait for the rest
                    self.fragments = (self.fragments or bytearray()) + payload
                    continue
                if opcode == 0 and self.fragments is not None:
                    payload, self.fragments = bytes(self.fragments + payload), None
                if payload:
                    self.on_message(payload, arrived, handled)
            elif opcode == 9:  # WebSocket ping
                self._frame(0xA, payload)
            elif opcode == 8:  # close
                self._frame(0x8, payload[:2])
                self.close()
                return
        if self.sock is not None:
            del buf[:i]

    def _send(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):  # rare: a few bytes now and then, into an empty send buffer
            asyncio.ensure_future(asyncio.get_running_loop().sock_sendall(sock, data[sent:]))

    def _frame(self, opcode: int, payload: bytes) -> None:
        """A client frame: masked, as RFC 6455 requires of clients."""
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        masked = bytes(b ^ mask[k & 3] for k, b in enumerate(payload))
        self._send(head + mask + masked)

    def send_text(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(sock.fileno())
            except (RuntimeError, ValueError, OSError):
                pass
            sock.close()
        self.lost_connection()


class AiohttpClient(Client):
    """The same client over aiohttp's WebSocket: one task reading, one future per message."""

    def __init__(self, tally: Tally, session, url: str) -> None:
        super().__init__(tally)
        self.session, self.url = session, url
        self.ws = None
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        import aiohttp

        try:
            async with self.session.ws_connect(self.url, autoping=True, max_msg_size=0, compress=0) as ws:
                self.ws = ws
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        now = time.time() * 1000
                        self.on_message(msg.data.encode(), now, now)
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                        break
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            self.tally.connect_errors += not self.connected
        finally:
            self.lost_connection()

    def send_text(self, text: str) -> None:
        if self.ws is not None and not self.ws.closed:
            asyncio.ensure_future(self.ws.send_str(text))

    def close(self) -> None:
        if self.ws is not None:
            asyncio.ensure_future(self.ws.close())


class Fleet:
    """Every client of one run: open them at a gentle ramp, then close them all."""

    def __init__(self, tally: Tally, port: int, transport: str = "raw", host: str = "127.0.0.1") -> None:
        self.tally, self.port, self.transport, self.host = tally, port, transport, host
        self.clients: list[Client] = []
        self.session = None

    async def _open_one(self, attempts: int = 2) -> None:
        for attempt in range(attempts):
            client = None
            try:
                if self.transport == "raw":
                    client = RawClient(self.tally, self.host, self.port)
                    await asyncio.wait_for(client.connect(), 10)
                else:
                    client = AiohttpClient(self.tally, self.session, f"ws://{self.host}:{self.port}{WS_PATH}")
                    client.task = asyncio.create_task(client.run())
                self.clients.append(client)
                if await asyncio.wait_for(asyncio.shield(client.ready), 15):
                    return
                if self.tally.refused:  # the server said no: asking again would not change that
                    return
            except (OSError, asyncio.TimeoutError):
                self.tally.connect_errors += 1
                if client is not None:  # too slow: give up on this one before trying again
                    client.closed = True
                    client.close()
                    if getattr(client, "task", None) is not None:
                        client.task.cancel()
            await asyncio.sleep(0.5 * (attempt + 1))

    async def open(self, n: int, per_second: float = 1000.0, deadline_s: float = 30.0) -> None:
        """Open *n* clients, *per_second* at most; whoever has not joined *deadline_s* after the last start is given up."""
        if self.transport == "aiohttp":
            import aiohttp
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        batch = 25
        pending = []
        for i in range(0, n, batch):
            pending += [asyncio.create_task(self._open_one()) for _ in range(min(batch, n - i))]
            await asyncio.sleep(batch / per_second)
        done, not_done = await asyncio.wait(pending, timeout=deadline_s)
        for task in not_done:
            task.cancel()

    def live(self) -> list[Client]:
        return [c for c in self.clients if c.connected and not c.closed]

    async def close(self) -> None:
        self.tally.stopping = True
        for c in self.clients:
            c.close()
        tasks = [c.task for c in self.clients if isinstance(c, AiohttpClient) and c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self.session is not None:
            await self.session.close()
        await asyncio.sleep(0.2)  # let the transports finish closing


class StalledClient:
    """Connects, joins the namespace, and never reads again: a phone on bad Wi-Fi, a hung tab.

    A plain blocking socket with a small receive buffer, set before connecting so the TCP
    window stays small: what the server sends it piles up on the server's side.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.local_port = self.sock.getsockname()[1]
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {WS_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           "\r\n").encode())

    def join(self) -> None:
        """After the server has taken the upgrade: a masked text frame "40" (mask of zeros)."""
        self.sock.sendall(bytes([0x81, 0x82, 0, 0, 0, 0]) + b"40")

    def close(self) -> None:
        self.sock.close()


def tcp_queues(local_port: int, server_port: int) -> dict:
    """From /proc/net/tcp: bytes waiting to the stalled client on both sides, and the server side's state."""
    states = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE",
              "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}
    found = {"client_unread_bytes": None, "server_unsent_bytes": None, "server_side_state": "gone"}
    try:
        lines = open("/proc/net/tcp").read().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        f = line.split()
        local, remote, state, queues = f[1], f[2], f[3], f[4]
        lport, rport = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
        tx, rx = (int(x, 16) for x in queues.split(":"))
        if lport == local_port and rport == server_port:
            found["client_unread_bytes"] = rx
        elif lport == server_port and rport == local_port:
            found["server_unsent_bytes"] = tx
            found["server_side_state"] = states.get(state, state)
    return found


class LagProbe:
    """How late the generator's own event loop runs: if it lags, latencies are ours, not the server's."""

    def __init__(self, period_s: float = 0.01) -> None:
        self.period = period_s
        self.lags = array("d")
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append((loop.time() - start - self.period) * 1000)

    def stop(self) -> None:
        self.task.cancel()
