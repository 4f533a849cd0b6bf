"""Mock pins that look like live sensors, so a laptop shows what a Pi would.

gpiozero's MockFactory gives real pin objects with real timing: a MockTriggerPin answers a
trigger with an echo of ``echo_time``, a MockChargingPin charges after ``charge_time``. The
sensors read them through their normal code path. Each sensor kind wires its own mock pins
(its ``mock`` in app/sensors/); this module gives them the factory, a place for mock chips
that several channels share, and, when asked to simulate, a thread that moves them slowly
with a little noise. Tests leave the simulation off and set exact values on the same pins.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Drift:
    """A believable slow signal: a wandering level, a slow swing and a little noise, kept in range."""

    low: float
    high: float
    period_s: float = 90.0
    noise: float = 0.01

    def __post_init__(self) -> None:
        self.level = (self.low + self.high) / 2
        self.phase = random.uniform(0, 2 * math.pi)

    def at(self, t: float) -> float:
        span = self.high - self.low
        self.level += random.gauss(0, span * 0.01)
        self.level = min(max(self.level, self.low + span * 0.2), self.high - span * 0.2)
        swing = span * 0.25 * math.sin(2 * math.pi * t / self.period_s + self.phase)
        value = self.level + swing + random.gauss(0, span * self.noise)
        return min(max(value, self.low), self.high)


class Simulator:
    """Wires mock pins for channels and, once started, drives them from a native thread."""

    TICK_S = 0.1

    def __init__(self, factory: Any, simulate: bool):
        self.factory = factory  # a gpiozero MockFactory
        self.simulate = simulate
        self.mocks: dict[Any, Any] = {}  # mock chips by the key their kind gives, e.g. an SPI bus
        self._drivers: list[tuple[Drift, Callable[[float], None]]] = []
        self._attached: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, channel) -> None:
        """Create the mock pins *channel*'s sensor will find, before the sensor claims them.

        Called again when a channel reopens its sensor after a fault; the pins are already there.
        """
        from .sensors import KINDS

        if channel.name not in self._attached:
            self._attached.add(channel.name)
            KINDS[channel.source].mock(channel.options, self)

    def shared(self, key: Any, make: Callable[[], Any]) -> Any:
        """The mock under *key*, made once and shared by the channels that name it."""
        if key not in self.mocks:
            self.mocks[key] = make()
        return self.mocks[key]

    def drive(self, drift: Drift, apply: Callable[[float], None]) -> None:
        """When simulating, *apply* what *drift* says now, and again every tick."""
        if self.simulate:
            apply(drift.at(time.monotonic()))
            self._drivers.append((drift, apply))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="livedash-simulator", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.TICK_S):
            now = time.monotonic()
            for drift, apply in list(self._drivers):
                apply(drift.at(now))

    def alive(self) -> bool:
        """False when its thread has ended without being stopped (the pins no longer move)."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for mock in self.mocks.values():
            mock.close()
