"""The broadcast path (app/fanout.py) against a real eventlet server on a real port.

One server serves the module: a 200 Hz channel (sent in frames, 50 a second), a 50 Hz one
(one ``sample`` per sample, 50 frames a second) and a 5 Hz one; client_timeout_s is short
(a ping every 3 s) and send_backlog_bytes the smallest allowed, so a client that stops
reading reaches it in seconds. The clients are raw Engine.IO/Socket.IO clients (the
benchmark's, bench/loadgen.py) that keep every event in arrival order; a watcher joins when
the module starts and the last test checks that pings kept it through a full minute of
frames. Nothing here times the server: every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from app import fanout
from bench.loadgen import Fleet, RawClient, Tally
from tests.support.server import RUNNING, Recorder, ServerProcess, wait_until

REPO = Path(__file__).resolve().parent.parent
CLIENT_TIMEOUT_S = 6.0  # engineio pings every 3 s and lets a client go 3 s after an unanswered one
LET_GO = re.compile(r"let go \(send backlog full\): \d+ bytes of live frames waiting")
WATCH_S = 60.0  # how long the watcher must stay connected through the frames

CONFIG = f"""
[server]
client_timeout_s = {CLIENT_TIMEOUT_S:g}
send_backlog_bytes = 32768
history = 4000
max_clients_per_address = 1000

[[channels]]
name = "a"
source = "random"
rate_hz = 200

[[channels]]
name = "b"
source = "random"
rate_hz = 50

[[channels]]
name = "c"
source = "random"
rate_hz = 5
"""


# The library internals: if python-engineio, python-socketio or eventlet change, this says so first.

def test_the_pinned_versions_are_the_ones_fanout_was_written_against():
    pinned = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    for name, version in fanout.WRITTEN_AGAINST.items():
        assert pinned[name] == version, f"requirements.txt pins {name} {pinned[name]}; app/fanout.py was written against {version}"
        assert importlib.metadata.version(name) == version


def test_the_internals_fanout_relies_on_are_there():
    assert fanout.problems() == []


def test_a_frame_is_what_a_websocket_library_reads():
    import wsproto.frame_protocol as fp

    for text in ("42[]", "x" * 125, "y" * 126, "z" * 65535, "é" * 40000):
        proto = fp.FrameProtocol(client=True, extensions=[])
        proto.receive_bytes(fanout.frame(text))
        frames = list(proto.received_frames())
        assert len(frames) == 1 and frames[0].opcode == fp.Opcode.TEXT and frames[0].message_finished
        assert frames[0].payload == text


# Clients.

class Probe(RawClient):
    """A raw client that keeps every event in arrival order (history, live, acks) and counts pings."""

    def __init__(self, tally: Tally, port: int, channels: list[str] | None = None, rcvbuf: int | None = None):
        super().__init__(tally, "127.0.0.1", port, rcvbuf)
        self.channels = channels
        self.events: list[tuple[str, object]] = []  # (event, data); acks as ("ack", (what was asked, reply))
        self.pings = 0
        self.asked: dict[int, str] = {}  # ack id -> the event it answers

    def on_message(self, p: bytes, arrived: float, handled: float) -> None:
        if p[:1] == b"0" and self.channels is not None:  # open: join with the channels asked for
            self.send_text("40" + json.dumps({"channels": self.channels}))
            return
        if p[:1] == b"2":
            self.pings += 1
        elif p[:2] == b"42":
            name, data = json.loads(p[2:])
            self.events.append((name, data))
        elif p[:2] == b"43":
            start = p.index(b"[")
            self.events.append(("ack", (self.asked[int(p[2:start])], json.loads(p[start:])[0])))
        super().on_message(p, arrived, handled)

    def ask(self, event: str, names: list[str]) -> None:
        ack = len(self.asked) + 1
        self.asked[ack] = event
        self.send_text(f"42{ack}" + json.dumps([event, names]))

    def pause(self) -> None:
        """Stop reading: what the server sends now piles up in the kernel, then in its backlog.
        It answers no pings either (with its window shut, not even its pongs got through TCP in
        tries): the test's server waits long for pongs, so only the backlog can let it go."""
        asyncio.get_running_loop().remove_reader(self.sock.fileno())

    def live(self, channel: str) -> int:
        """Live samples of *channel* so far (not history)."""
        return sum(1 if name == "sample" else len(data["samples"]) for name, data in self.events
                   if name in ("sample", "samples") and data["channel"] == channel)

    def seqs(self, channel: str) -> list[int]:
        """Every seq of *channel* it holds, history and live, in arrival order."""
        out = []
        for name, data in self.events:
            if name == "history" and data["channel"] == channel:
                out += [s["seq"] for s in data["samples"]]
            elif name == "sample" and data["channel"] == channel:
                out.append(data["seq"])
            elif name == "samples" and data["channel"] == channel:
                out += [s["seq"] for s in data["samples"]]
        return out


def check_order(events) -> dict[str, int]:
    """Per channel: history first, then live samples each exactly one past the last, nothing once
    unsubscribed (its ack), history again after a subscribe. Returns the live samples checked."""
    expect: dict[str, int | None] = {}
    live: dict[str, int] = {}
    for i, (name, data) in enumerate(events):
        if name == "history":
            samples = data["samples"]
            assert samples, f"event {i}: empty history of {data['channel']}"
            expect[data["channel"]] = samples[-1]["seq"] + 1
        elif name in ("sample", "samples"):
            channel = data["channel"]
            assert expect.get(channel) is not None, f"event {i}: a live {channel} sample with no history before it"
            for s in ([data] if name == "sample" else data["samples"]):
                assert s["seq"] == expect[channel], f"event {i}: {channel} seq {s['seq']}, expected {expect[channel]}"
                expect[channel] += 1
                live[channel] = live.get(channel, 0) + 1
        elif name == "ack" and data[0] == "unsubscribe":
            assert data[1]["ok"], data
            for channel in data[1]["channels"]:
                expect[channel] = None
    return live


def run(coro, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def connected(port: int, channels: list[str] | None = None, tally: Tally | None = None) -> Probe:
    probe = Probe(tally or Tally(), port, channels)
    await probe.connect()
    assert await asyncio.wait_for(probe.ready, 15), "the server refused the probe"
    return probe


class Watcher(threading.Thread):
    """One client connected from the module's start: does it last a minute of 50 Hz frames on pings alone?"""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.probe: Probe | None = None
        self.joined_at = 0.0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.snapshot: tuple[int, bool, list] | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._watch())
        except BaseException as e:  # reported by the test that checks it
            self.error = e

    async def _watch(self) -> None:
        self.probe = await connected(self.port, ["b"])
        self.joined_at = time.monotonic()
        while not self.stop.is_set():
            await asyncio.sleep(0.1)
        self.snapshot = (self.probe.pings, self.probe.closed, list(self.probe.events))
        self.probe.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerProcess(tmp_path_factory.mktemp("fanout"), CONFIG).start()
    RUNNING.discard(s)  # shared by the module's tests: stopped here, not after each test
    try:
        wait_until(lambda: s.health()["channels"]["a"]["seq"] > 50, what="sampling")
        assert s.health()["fanout"]["path"] == "broadcast"
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def watcher(server):
    w = Watcher(server.port)
    w.start()
    wait_until(lambda: w.joined_at or w.error, what="the watcher to join")
    yield w
    w.stop.set()
    w.join(10)


# Behaviour.

def test_order_per_client_across_history_acks_and_live_frames(server, watcher):
    """Each subscribe's history comes before that channel's next live frame, its ack after the
    history, and after an unsubscribe's ack nothing more of the channel: the broadcast frames
    never overtake what engineio still has queued for the client."""

    async def go():
        probe = await connected(server.port)
        await until(lambda: probe.live("a") > 200, 30, "history and live samples of a")
        for _ in range(8):
            n = len(probe.events)
            probe.ask("unsubscribe", ["a"])
            await until(lambda: any(name == "ack" for name, _ in probe.events[n:]), 10, "the unsubscribe ack")
            await asyncio.sleep(0.05)
            n = len(probe.events)
            probe.ask("subscribe", ["a"])
            await until(lambda: any(name == "samples" and d["channel"] == "a" for name, d in probe.events[n:]), 10,
                        "a's live frames again")
        probe.close()
        return probe.events

    events = run(go())
    assert events[0][0] == "channels"
    live = check_order(events)
    assert live["a"] > 100 and live["b"] > 50 and live["c"] > 1
    order = [d[0] if n == "ack" else n for n, d in events if (n == "history" and d["channel"] == "a") or n == "ack"]
    assert order == ["history"] + ["unsubscribe", "history", "subscribe"] * 8, order


def test_an_unsubscribed_client_receives_nothing_of_that_room(server, watcher):
    async def go():
        only_c = await connected(server.port, ["c"])
        everything = await connected(server.port)
        await until(lambda: everything.live("a") > 400, 30, "two seconds of a")
        only_c.close()
        everything.close()
        return only_c.events

    events = run(go())
    channels = {d["channel"] for name, d in events if name in ("history", "sample", "samples")}
    assert channels == {"c"}
    assert check_order(events)["c"] >= 5


@pytest.mark.parametrize("transports", [("polling",), ("polling", "websocket")], ids=["polling", "upgrade"])
def test_a_long_polling_client_gets_every_sample(server, watcher, transports):
    """On long-polling (and while upgrading from it) broadcasts take engineio's normal path."""
    with Recorder(server.url, transports=transports) as client:
        wait_until(lambda: len(client.samples("a")) > 600, timeout=30, what="three seconds of a")
        transport = client.client.transport()
    assert transport == transports[-1]
    for channel in ("a", "b"):
        history = next(h["samples"] for h in client.of("history") if h["channel"] == channel)
        seqs = [s["seq"] for s in history] + [s["seq"] for s in client.samples(channel)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{channel}: a gap or a repeat"


def test_a_stalled_client_is_let_go_at_its_backlog_limit_and_others_get_every_sample(tmp_path):
    """100 clients read; one stops reading. Its bytes pile up in the kernel, then in its backlog
    (counted in /healthz) until send_backlog_bytes, and it is let go, with the reason in the log.
    The others get every seq; the stalled one, back, has what it missed from history, no gap.
    Its own server, with a long client_timeout_s: the module's (6 s) would let the stalled client
    go for its missed pongs, often before its backlog is full."""

    async def go():
        tally = Tally()
        fleet = Fleet(tally, server.port)
        await fleet.open(100)
        assert tally.connected == 100
        stalled = Probe(Tally(), server.port, ["a", "b"], rcvbuf=16384)
        await stalled.connect()
        await until(lambda: stalled.live("a") > 100, 60, "the stalled client's history and live")
        tally.open_window(3600)
        stalled.pause()
        loop = asyncio.get_running_loop()
        health = lambda: loop.run_in_executor(None, server.health)
        behind = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            h = await health()
            behind = max(behind, h["fanout"]["clients_behind"])
            if behind and LET_GO.search(server.output()):
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError("the stalled client was not let go")
        before = stalled.seqs("a")
        stalled.close()
        back = await connected(server.port, ["a", "b"])
        await until(lambda: back.live("a") > 100, 60, "history and live after coming back")
        tally.t1 = time.time() * 1000
        await until(lambda: all(c.past_window for c in fleet.live()), 30, "the fleet past the window")
        back.close()
        await fleet.close()
        return tally, behind, before, back

    config = CONFIG.replace(f"client_timeout_s = {CLIENT_TIMEOUT_S:g}", "client_timeout_s = 120")
    with ServerProcess(tmp_path, config) as server:
        wait_until(lambda: server.health()["channels"]["a"]["seq"] > 50, what="sampling")
        tally, behind, before, back = run(go())
        output = server.output()
        assert behind >= 1, "the stalled client never had a backlog"
        assert tally.disconnects == 0 and tally.duplicates == 0
        assert tally.delivered == 100 * tally.produced(), "a reading client missed samples"
        seen = sorted(set(before) | set(back.seqs("a")))
        assert seen == list(range(seen[0], seen[-1] + 1)), "a gap between what the stalled client had and its resync"
        assert max(before) < max(back.seqs("a"))
        assert len(LET_GO.findall(output)) == 1, "only the stalled client was let go"


def test_pings_keep_a_client_connected_through_a_minute_of_frames(server, watcher):
    """The watcher joined when the module started; engineio's pings and its pongs went in order
    with 50 frames a second. It is still the same session, it answered every ping, it missed no frame."""
    wait_until(lambda: time.monotonic() - watcher.joined_at >= WATCH_S or watcher.error, timeout=WATCH_S + 10,
               interval=0.5, what="a minute of the watcher")
    watcher.stop.set()
    watcher.join(10)
    assert watcher.error is None, watcher.error
    pings, closed, events = watcher.snapshot
    assert not closed, "the watcher was disconnected"
    assert pings >= WATCH_S / (CLIENT_TIMEOUT_S / 2) - 2
    assert check_order(events)["b"] >= 50 * 10


def test_stop_with_clients_mid_backlog_exits_promptly(tmp_path):
    """Five clients that never read (nor answer pings: client_timeout_s is long here) have bytes in
    their backlogs when SIGTERM comes; the server still exits, and does not wait for them."""
    config = CONFIG.replace("send_backlog_bytes = 32768", "send_backlog_bytes = 67108864").replace(
        f"client_timeout_s = {CLIENT_TIMEOUT_S:g}", "client_timeout_s = 120")
    with ServerProcess(tmp_path, config) as s:
        stalled = []
        for _ in range(5):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", s.port))
            sock.send(f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            assert sock.recv(64).startswith(b"HTTP/1.1 101")
            sock.send(bytes([0x81, 0x82, 0, 0, 0, 0]) + b"40")  # "40", masked with zeros; then never a read
            stalled.append(sock)
        wait_until(lambda: s.health()["fanout"]["clients_behind"] == 5, timeout=30, what="five clients behind")
        assert s.stop(timeout=20) == 0
        for sock in stalled:
            sock.close()
