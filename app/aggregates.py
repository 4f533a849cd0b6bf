"""Hours of a channel in bounded memory: min, max, sum and count per second and per minute.

The raw ring holds the last few hundred samples: a minute of a 10 Hz channel. For longer
windows each channel also folds every sample into fixed-size rings of buckets, one ring per
bucket width. A bucket's slot in its ring is its number (time // width) modulo the ring's
size, and the slot remembers that number, so a slot left over from an earlier lap is seen as
empty, not as data: nothing is ever cleared, a gap (server off, sensor fault, a clock
stepped forward) is simply a run of buckets with nothing in them, and memory never grows.

Memory is fixed when the object is made: ``SLOT_BYTES`` per slot, 8 bytes for each of the
bucket number, min, max, sum and count in ``array`` storage, whatever the rate. With the
default tiers (3720 seconds and 1500 minutes: an hour and a day, with room for the bucket
being filled) that is 5220 slots, 209 KB a channel; ``bytes_bound()`` says so.

Pure: the caller hands in each sample's time (epoch milliseconds, as the hub numbers them),
so tests drive it with exact clocks.
"""

from __future__ import annotations

import math
import threading
from array import array
from typing import Any, Iterable

# The time windows a page or an export may ask for, shortest first; the page's default.
WINDOWS = {"1m": 60, "5m": 300, "1h": 3600, "24h": 86400}
DEFAULT_WINDOW = "5m"

SLOT_BYTES = 5 * 8  # bucket number, min, max, sum, count
EMPTY = -1  # the bucket number of a slot that never held one


def window_s(name: object) -> int:
    """Seconds of a window's name; ValueError with the reason for anything else."""
    if name not in WINDOWS:
        raise ValueError(f"window: expected one of {', '.join(WINDOWS)}, got {str(name)[:32]!r}")
    return WINDOWS[name]


class Tier:
    """One ring of buckets *width_s* seconds wide, *size* of them."""

    def __init__(self, width_s: int, size: int):
        self.width_s, self.size = width_s, size
        self.width_ms = width_s * 1000
        self.number = array("q", [EMPTY]) * size
        self.min = array("d", [0.0]) * size
        self.max = array("d", [0.0]) * size
        self.sum = array("d", [0.0]) * size
        self.count = array("q", [0]) * size
        self.newest = EMPTY  # the highest bucket number folded in

    @property
    def span_s(self) -> int:
        return self.width_s * self.size

    def add(self, t_ms: float, value: float) -> None:
        n = int(t_ms // self.width_ms)
        if n < self.newest:  # a clock stepped back: the sample counts for now, never rewrites the past
            n = self.newest
        i = n % self.size
        if self.number[i] != n:  # a new bucket (or a slot left from a lap ago: it starts over)
            self.number[i], self.min[i], self.max[i], self.sum[i], self.count[i] = n, value, value, value, 1
            self.newest = n
            return
        if value < self.min[i]:
            self.min[i] = value
        elif value > self.max[i]:
            self.max[i] = value
        self.sum[i] += value
        self.count[i] += 1

    def buckets(self, since_ms: float, decimals: int | None = None) -> list[dict[str, Any]]:
        """Buckets that end after *since_ms*, oldest first: {t (start, epoch ms), min, max, mean, count}."""
        out = []
        for n, i in self._held(int(max(since_ms, 0.0) // self.width_ms)):
            mean = self.sum[i] / self.count[i]
            out.append({"t": n * self.width_ms, "min": self.min[i], "max": self.max[i],
                        "mean": mean if decimals is None else round(mean, decimals), "count": self.count[i]})
        return out

    def _held(self, first: int = 0) -> list[tuple[int, int]]:
        """(bucket number, slot) of every bucket held from bucket *first* on, oldest first."""
        if self.newest == EMPTY:
            return []
        numbers = range(max(first, self.newest - self.size + 1), self.newest + 1)
        return [(n, n % self.size) for n in numbers if self.number[n % self.size] == n]

    def snapshot(self) -> dict[str, Any]:
        """Columns of the buckets held (JSON-friendly, and half the size of one object each)."""
        held = self._held()
        return {"width_s": self.width_s, "n": [n for n, _ in held], "min": [self.min[i] for _, i in held],
                "max": [self.max[i] for _, i in held], "sum": [self.sum[i] for _, i in held],
                "count": [self.count[i] for _, i in held]}

    def restore(self, saved: dict[str, Any]) -> None:
        """Refill from a snapshot, all or nothing: raises ValueError, TypeError or KeyError on
        anything that is not one, before changing a slot."""
        columns = [saved[k] for k in ("n", "min", "max", "sum", "count")]
        if len({len(c) for c in columns}) != 1:
            raise ValueError("columns of different lengths")
        rows = []
        for n, lo, hi, total, count in zip(*columns):
            row = (int(n), float(lo), float(hi), float(total), int(count))
            if row[0] < 0 or row[4] < 1 or not all(math.isfinite(v) for v in row[1:4]) or row[1] > row[2]:
                raise ValueError(f"bucket {n} is not a bucket")
            rows.append(row)
        for n, lo, hi, total, count in sorted(rows)[-self.size:]:
            i = n % self.size
            self.number[i], self.min[i], self.max[i], self.sum[i], self.count[i] = n, lo, hi, total, count
            self.newest = max(self.newest, n)


DEFAULT_TIERS = ((1, 3720), (60, 1500))  # an hour of seconds and a day of minutes, with a margin


class Aggregates:
    """A channel's tiers, fed every sample it keeps. Thread-safe: the hub's pump adds while a
    Socket.IO handler or an HTTP export reads, and a reader must see whole buckets and the
    seq they end at together (the page folds live samples after that seq onto them)."""

    def __init__(self, tiers: Iterable[tuple[int, int]] = DEFAULT_TIERS):
        self.tiers = [Tier(width, size) for width, size in sorted(tiers)]
        self.seq = 0  # the last sample folded in
        self._lock = threading.Lock()

    def bytes_bound(self) -> int:
        return sum(t.size for t in self.tiers) * SLOT_BYTES

    def add(self, seq: int, t_ms: float, value: float) -> None:
        with self._lock:
            for tier in self.tiers:
                tier.add(t_ms, value)
            self.seq = seq

    def tier_for(self, window_s: float) -> Tier:
        """The finest tier that spans *window_s* (the coarsest if none does)."""
        return next((t for t in self.tiers if t.span_s >= window_s + t.width_s), self.tiers[-1])

    def window(self, window_s: float, now_ms: float, decimals: int | None = None) -> dict[str, Any]:
        """What a chart or an export of the last *window_s* seconds needs, as one consistent read."""
        tier = self.tier_for(window_s)
        with self._lock:
            return {"width_s": tier.width_s, "seq": self.seq,
                    "buckets": tier.buckets(now_ms - window_s * 1000, decimals)}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"seq": self.seq, "tiers": [t.snapshot() for t in self.tiers]}

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back a snapshot; tiers whose width is no longer kept are dropped. Raises on damage."""
        fresh = [Tier(t.width_s, t.size) for t in self.tiers]  # all or nothing
        by_width = {t.width_s: t for t in fresh}
        for entry in saved["tiers"]:
            tier = by_width.get(int(entry["width_s"]))
            if tier is not None:
                tier.restore(entry)
        seq = int(saved["seq"])
        with self._lock:
            self.tiers, self.seq = fresh, seq
