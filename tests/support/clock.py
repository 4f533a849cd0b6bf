"""A clock for the sampler and the hub that moves only when they sleep, so tests count exactly.

The sampler's loop runs in the test's own thread (``Sampler.run``) on a FakeClock: every
sleep takes no real time and moves the clock on; the clock stops the loop at ``until``.
Reads that must take time move it themselves (``clock.now += 0.1``); ``late`` makes the
next wake-ups late, as a busy machine does.
"""

from __future__ import annotations

import threading

WALL_AT_ZERO = 1_700_000_000.0  # epoch seconds the wall clock shows at monotonic 0


class FakeClock:
    def __init__(self, until: float = float("inf")):
        self.now = 0.0
        self.until = until
        self.sleeps: list[float] = []  # every sleep asked for, in order
        self.late: list[float] = []  # extra seconds the next wake-ups come late, one per sleep

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return WALL_AT_ZERO + self.now

    def sleep(self, stop: threading.Event, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds + (self.late.pop(0) if self.late else 0.0)
        if self.now >= self.until:
            stop.set()
        return stop.is_set()
