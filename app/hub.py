"""The hub: each channel's recent samples and status, and the one place that emits them.

Samplers run on native threads and only ``post`` to the hub's inbox, a thread-safe queue.
The hub's pump runs in the server's own concurrency world (a green thread under eventlet,
a thread under threading), takes what was posted, numbers it, keeps it, and emits it to
the room of the channel, so every subscribed client gets it and nobody else does.

A channel faster than ``frame_hz`` is sent in frames: every sample, but at most frame_hz
messages a second per client (``samples``, a list, instead of one ``sample`` each). Per
client and message is where the server spends its time (queue, wake-up, WebSocket frame,
send), not per sample; a 200 Hz channel at 50 frames costs a quarter of what it would. A
channel at or below frame_hz goes out sample by sample, as soon as it is read.

Every sample sent is also kept beyond the raw ring, in the channel's aggregates (min, max,
mean per second and per minute, app/aggregates.py), and judged against its limits
(app/levels.py); a crossing goes out as a ``level`` event. A page's time window decides
what it gets on connect: the raw ring, and the aggregates too when the ring is too short
(a client that names no window, a script say, gets the raw ring only).
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .aggregates import WINDOWS, Aggregates
from .config import ChannelConfig
from .levels import Tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    seq: int  # 1, 2, 3... per channel: how a client finds gaps and duplicates
    t: float  # the server's wall clock when it was read, epoch milliseconds
    value: float

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "t": self.t, "value": self.value}


class Channel:
    """One channel's live state: its ring of recent samples, its status and why."""

    def __init__(self, config: ChannelConfig, history: int):
        self.config = config
        self.samples: deque[Sample] = deque(maxlen=history)
        self.seq = 0
        self.status = "starting"
        self.reason: str | None = None
        self.last_at: float | None = None  # monotonic time of the last sample
        self.last_t = 0.0  # its wall-clock time; t never goes backwards, whatever NTP does
        self.pending: list[Sample] = []  # numbered, waiting for the channel's next frame
        self.framed_at = -float("inf")  # monotonic time its last frame went out
        self.aggregates = Aggregates()
        self.levels = Tracker(config.limits)

    @property
    def name(self) -> str:
        return self.config.name

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"name": c.name, "label": c.title, "unit": c.unit, "rate_hz": c.rate_hz,
                "decimals": c.decimals, "min": c.display_min, "max": c.display_max,
                "source": c.source, "status": self.status, "reason": self.reason,
                "raw_span_s": self.raw_span_s, "limits": c.limits.as_dict(),
                "level": self.levels.level, "limit": self.levels.limit}

    @property
    def raw_span_s(self) -> float:
        """How far back the raw ring reaches when full; a longer window needs the aggregates."""
        return self.samples.maxlen / self.config.rate_hz

    def window(self, window_s: float, now_ms: float) -> dict[str, Any]:
        """The last *window_s* seconds: raw samples if the ring spans them, else aggregates."""
        if window_s <= self.raw_span_s:
            since = now_ms - window_s * 1000
            return {"kind": "raw", "samples": [s.as_dict() for s in list(self.samples) if s.t >= since]}
        return {"kind": "aggregates", **self.aggregates.window(window_s, now_ms, self.config.decimals + 2)}

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        return [s.as_dict() for s in list(self.samples) if s.seq > since]

    def age_s(self, now: float) -> float | None:
        return None if self.last_at is None else now - self.last_at


@dataclass
class Client:
    address: str
    channels: set[str] = field(default_factory=set)
    window: str | None = None  # the page's time window; None (a script, the load generator): raw only


def room(channel: str) -> str:
    return f"channel:{channel}"


QUIET = object()  # the inbox had nothing for a while: time to send frames that are due


@dataclass(frozen=True)
class Link:
    """The state of a connection beyond the pages (the MQTT broker's), shown in their header."""
    name: str
    state: str  # connecting, connected or disconnected
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "reason": self.reason}


class Hub:
    """Keeps the channels and fans their samples and status out to the clients."""

    def __init__(self, channels: Iterable[ChannelConfig], history: int,
                 emit: Callable[..., None], enter_room: Callable[[str, str], None],
                 leave_room: Callable[[str, str], None], frame_hz: float = 50.0,
                 clock: Callable[[], float] = time.monotonic):
        self.channels = {c.name: Channel(c, history) for c in channels}
        self._clock = clock  # monotonic seconds; tests give a fake one and count frames exactly
        self.frame_s = 1.0 / frame_hz
        self.clients: dict[str, Client] = {}
        self._emit, self._enter_room, self._leave_room = emit, enter_room, leave_room
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.pumped_at = self._clock()  # when the pump last took from the inbox
        self.links: dict[str, Link] = {}
        # Told in the pump of each numbered sample, ``sample(channel, sample)``, and each status
        # change, ``status(channel)`` (the MQTT publisher, the metrics): they must never block.
        self.observers: list[Any] = []

    # From any thread.

    def post(self, name: str, t: float, value: float | None, fault: str | None) -> None:
        """Thread-safe: what a sampler read (or why it could not)."""
        self._inbox.put((name, t, value, fault))

    def post_link(self, link: Link) -> None:
        """Thread-safe: a link's new state, for the pages."""
        self._inbox.put(link)

    def close_inbox(self) -> None:
        self._inbox.put(None)

    def backlog(self) -> int:
        return self._inbox.qsize()

    # In the server's concurrency world.

    def pump(self, wait_for: Callable[[Callable[[], Any]], Any]) -> None:
        """Take posts until the inbox is closed. *wait_for* runs a blocking get without stalling the loop."""
        while True:
            timeout = self._next_frame_in(self._clock())
            item = wait_for(lambda: self._get(timeout))
            self.pumped_at = self._clock()
            while item is not None:
                if isinstance(item, Link):
                    self._set_link(item)
                elif item is not QUIET:
                    self._take(*item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
            else:
                self._send_frames(float("inf"))  # closing: what was read is sent and kept
                return
            self._send_frames(self._clock())

    def _get(self, timeout: float | None) -> Any:
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return QUIET

    def _take(self, name: str, t: float, value: float | None, fault: str | None) -> None:
        channel = self.channels[name]
        if fault is not None:
            self._set_status(channel, "fault", fault)
            return
        if channel.status != "ok":  # the page hears "ok" before the sample that ends a fault
            self._set_status(channel, "ok", None)
        channel.seq += 1
        t = channel.last_t = max(t, channel.last_t)  # a clock stepped back must not reorder the chart
        sample = Sample(channel.seq, t, value)
        channel.pending.append(sample)
        channel.last_at = self._clock()
        for observer in self.observers:
            observer.sample(channel, sample)
        if channel.config.rate_hz * self.frame_s <= 1.0:  # not faster than frames: no reason to wait
            self._send_frame(channel, channel.last_at)

    def _next_frame_in(self, now: float) -> float | None:
        """Seconds until the earliest waiting frame is due; None: nothing waits."""
        due = [c.framed_at + self.frame_s for c in self.channels.values() if c.pending]
        return max(0.0, min(due) - now) if due else None

    def _send_frames(self, now: float) -> None:
        for channel in self.channels.values():
            if channel.pending and now - channel.framed_at >= self.frame_s:
                self._send_frame(channel, now)

    def _send_frame(self, channel: Channel, now: float) -> None:
        """Keep the waiting samples and send them: one alone as ``sample``, several as ``samples``."""
        if not channel.pending:
            return
        pending, channel.pending, channel.framed_at = channel.pending, [], now
        channel.samples.extend(pending)  # kept only once sent: history never runs ahead of the pages
        if len(pending) == 1:
            self._emit("sample", {"channel": channel.name, **pending[0].as_dict()}, to=room(channel.name))
        else:
            self._emit("samples", {"channel": channel.name, "samples": [s.as_dict() for s in pending]},
                       to=room(channel.name))
        for sample in pending:
            channel.aggregates.add(sample.seq, sample.t, sample.value)
            self._judge(channel, sample)

    def _judge(self, channel: Channel, sample: Sample) -> None:
        """A reading against the channel's limits: a crossing is logged once and sent, after its sample."""
        crossing = channel.levels.update(sample.value)
        if crossing is None:
            return
        log.log(logging.INFO if crossing.level == "ok" else logging.WARNING, "channel %s: %s: %s (limit %s)",
                channel.name, crossing.level, crossing.value, crossing.limit,
                extra={"CHANNEL": channel.name, "LEVEL": crossing.level})
        self._emit("level", {"channel": channel.name, "level": crossing.level, "value": crossing.value,
                             "limit": crossing.limit}, to=room(channel.name))

    def _set_status(self, channel: Channel, status: str, reason: str | None) -> None:
        if (channel.status, channel.reason) == (status, reason):
            return
        if channel.pending:  # the samples read before the change go out before it
            self._send_frame(channel, self._clock())
        if status == "fault":
            log.warning("channel %s: fault: %s", channel.name, reason, extra={"CHANNEL": channel.name})
        elif channel.status == "fault":
            log.info("channel %s: recovered", channel.name, extra={"CHANNEL": channel.name})
        channel.status, channel.reason = status, reason
        self._emit("status", {"channel": channel.name, "status": status, "reason": reason})
        for observer in self.observers:
            observer.status(channel)

    def _set_link(self, link: Link) -> None:
        if self.links.get(link.name) != link:
            self.links[link.name] = link
            self._emit("link", link.as_dict())

    # Clients.

    def connect(self, sid: str, address: str, wanted: Iterable[str] | None, window: str | None = None) -> None:
        """A new client: the channel list, then each subscribed channel's history (for its window)."""
        self.clients[sid] = Client(address, window=window)
        log.info("client %s connected (%d now)", address, len(self.clients), extra={"CLIENTS": len(self.clients)})
        self._emit("channels", self.describe(), to=sid)
        for link in self.links.values():
            self._emit("link", link.as_dict(), to=sid)
        self.subscribe(sid, self.channels if wanted is None else wanted)

    def disconnect(self, sid: str, reason: str | None = None) -> None:
        """*reason*: Flask-SocketIO's, e.g. "ping timeout" or "client disconnect", for the log."""
        client = self.clients.pop(sid, None)
        if client is not None:
            log.info("client %s disconnected (%s; %d now)", client.address, reason or "reason unknown",
                     len(self.clients), extra={"CLIENTS": len(self.clients)})

    def subscribe(self, sid: str, names: Iterable[str]) -> None:
        """Join the rooms before taking history, so nothing falls between; the client drops repeats by seq.

        A channel the client already has is not sent again: asking twice costs nothing.
        """
        client = self.clients[sid]
        for name in names:
            if name in client.channels:
                continue
            client.channels.add(name)
            self._enter_room(sid, room(name))
            self._emit("history", {"channel": name, "samples": self.channels[name].history()}, to=sid)
            if client.window is not None:
                self._send_aggregates(sid, self.channels[name], client.window)

    def set_window(self, sid: str, window: str) -> None:
        """A client's new time window: the aggregates it now needs (the raw ring it has already)."""
        client = self.clients[sid]
        client.window = window
        for name in sorted(client.channels):
            self._send_aggregates(sid, self.channels[name], window)

    def _send_aggregates(self, sid: str, channel: Channel, window: str) -> None:
        """``aggregates`` {channel, window, width_s, seq, buckets}, if the raw ring is too short for
        *window*; the page folds the live samples after ``seq`` onto these buckets itself."""
        data = channel.window(WINDOWS[window], time.time() * 1000)
        if data.pop("kind") == "aggregates":
            self._emit("aggregates", {"channel": channel.name, "window": window, **data}, to=sid)

    def unsubscribe(self, sid: str, names: Iterable[str]) -> None:
        client = self.clients[sid]
        for name in names:
            client.channels.discard(name)
            self._leave_room(sid, room(name))

    def clients_from(self, address: str) -> int:
        return sum(c.address == address for c in self.clients.values())

    def describe(self) -> list[dict[str, Any]]:
        return [c.describe() for c in self.channels.values()]

    # Saved history.

    def snapshot(self) -> dict[str, Any]:
        """What to save: every numbered sample, those still waiting for their frame too (a stop
        may come before the pump's last frame; a page that reconnects gets them as history)."""
        saved = {}
        for c in self.channels.values():
            samples = c.history() + [s.as_dict() for s in c.pending]
            saved[c.name] = {"seq": c.seq, "samples": samples[-c.samples.maxlen:],
                             "aggregates": c.aggregates.snapshot()}
        return saved

    def restore(self, saved: dict[str, Any], lagging_s: float | None = None) -> None:
        """Take back what a previous run saved, so numbering goes on and pages find no hole.

        *lagging_s*: how long the previous run may have gone on after this was saved (it
        crashed). Numbering then jumps past anything it may have sent meanwhile, at half as
        fast again as the channel's rate, so no page ever sees one seq with two values.
        Channels that no longer exist, and entries that are not samples, are dropped.
        """
        for name, entry in saved.items():
            channel = self.channels.get(name)
            try:
                samples = [Sample(int(s["seq"]), float(s["t"]), float(s["value"])) for s in entry["samples"]]
                seq = int(entry["seq"])
            except (KeyError, TypeError, ValueError):
                log.warning("saved history of channel %s is damaged; ignored", name)
                continue
            if channel is None or channel.seq:
                continue
            samples.sort(key=lambda s: s.seq)
            channel.samples.extend(s for s in samples if s.seq <= seq)
            try:
                if "aggregates" in entry:
                    channel.aggregates.restore(entry["aggregates"])
            except (KeyError, TypeError, ValueError) as e:
                log.warning("saved aggregates of channel %s are damaged (%s); starting them empty", name, e)
            channel.seq = max([seq] + [s.seq for s in samples])
            if channel.samples:
                channel.last_t = channel.samples[-1].t
            if lagging_s is not None:
                channel.seq += int(lagging_s * channel.config.rate_hz * 1.5) + 10

    def health(self, now: float) -> dict[str, Any]:
        channels = {}
        for c in self.channels.values():
            age = c.age_s(now)
            channels[c.name] = {"status": c.status, "reason": c.reason, "rate_hz": c.config.rate_hz,
                                "last_sample_age_s": None if age is None else round(age, 3),
                                "seq": c.seq, "level": c.levels.level}
        return channels
