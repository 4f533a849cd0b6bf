"""Mock pins that look like live sensors, so a laptop shows what a Pi would.

gpiozero's MockFactory gives real pin objects with real timing: a MockTriggerPin answers a
trigger with an echo of ``echo_time``, a MockChargingPin charges after ``charge_time``. The
sensors read them through their normal code path. This module wires those pins up for a
channel and, when asked to simulate, moves them slowly with a little noise. Tests leave the
simulation off and set exact values on the same pins.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

from gpiozero import Device
from gpiozero.pins.mock import MockChargingPin, MockFactory, MockSPIDevice, MockTriggerPin

from .config import ChannelConfig

SPEED_OF_SOUND = 343.26  # m/s, as gpiozero's DistanceSensor assumes
ADC_BITS = {"MCP3001": 10, "MCP3002": 10, "MCP3004": 10, "MCP3008": 10,
            "MCP3201": 12, "MCP3202": 12, "MCP3204": 12, "MCP3208": 12}


class MockMCP3xxx(MockSPIDevice):
    """The chip side of an MCP3xxx ADC on mock SPI pins; set ``volts[channel]`` to what it measures.

    gpiozero ships only the abstract MockSPIDevice (its ready MCP3xxx mocks live in its test
    suite). The conversation: a start bit, single/differential, the channel number, then the
    chip answers with a null bit and the result, most significant bit first.
    """

    def __init__(self, factory: MockFactory, clock_pin: int, mosi_pin: int, miso_pin: int,
                 select_pin: int, *, bits: int = 10, vref: float = 3.3):
        super().__init__(clock_pin, mosi_pin, miso_pin, select_pin, pin_factory=factory)
        self.bits, self.vref = bits, vref
        self.volts = [0.0] * 8
        self.state = "idle"

    def on_start(self) -> None:
        super().on_start()
        self.state = "idle"

    def on_bit(self) -> None:
        if self.state == "idle" and self.rx_buf[-1]:  # the start bit
            self.state, self.rx_buf = "mode", []
        elif self.state == "mode":
            self.state, self.rx_buf = ("single" if self.rx_buf[-1] else "diff"), []
        elif self.state in ("single", "diff") and len(self.rx_buf) == 3:
            volts = self.volts[self.rx_word()]
            if self.state == "diff":
                volts -= self.volts[self.rx_word() ^ 1]
            code = round(min(max(volts, 0.0), self.vref) / self.vref * (2 ** self.bits - 1))
            self.tx_word(code, self.bits + 2)  # the sample bit and the null bit lead
            self.state = "result"
        elif self.state == "result" and not self.tx_buf:
            self.state, self.rx_buf = "idle", []


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

    def __init__(self, factory: MockFactory, simulate: bool):
        self.factory = factory
        self.simulate = simulate
        self.adcs: dict[tuple[int, int], MockMCP3xxx] = {}  # by (clock, select) pin
        self._drivers: list[tuple[Drift, Callable[[float], None]]] = []
        self._attached: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, channel: ChannelConfig) -> None:
        """Create the mock pins *channel*'s sensor will find, before the sensor claims them.

        Called again when a channel reopens its sensor after a fault; the pins are already there.
        """
        if channel.name in self._attached:
            return
        self._attached.add(channel.name)
        o = channel.options
        if channel.source == "distance":
            echo = self.factory.pin(o.echo_pin)
            trigger = self.factory.pin(o.trigger_pin, pin_class=MockTriggerPin,
                                       echo_pin=echo, echo_time=2 * 0.5 / SPEED_OF_SOUND)
            metres = Drift(0.2, min(1.5, o.max_distance * 0.9), period_s=60)
            self._drive(metres, lambda m: setattr(trigger, "echo_time", 2 * m / SPEED_OF_SOUND))
        elif channel.source == "light":
            limit = o.charge_time_limit
            pin = self.factory.pin(o.pin, pin_class=MockChargingPin, charge_time=limit / 2)
            light = Drift(0.2, 0.9, period_s=120)
            self._drive(light, lambda level: setattr(pin, "charge_time", limit * (1 - level)))
        elif channel.source == "adc":
            adc = self.adc(o.clock_pin, o.mosi_pin, o.miso_pin, o.select_pin,
                           bits=ADC_BITS[o.chip], vref=o.vref)
            index = o.adc_channel
            adc.volts[index] = 0.75
            # Around 0.75 V: 25 degrees C on a TMP36, the sensor this input is most often used for.
            self._drive(Drift(0.65, 0.85, period_s=150, noise=0.005),
                        lambda v: adc.volts.__setitem__(index, v))

    def adc(self, clock: int, mosi: int, miso: int, select: int, *, bits: int = 10,
            vref: float = 3.3) -> MockMCP3xxx:
        """The mock chip on these SPI pins, made once and shared by its channels."""
        key = (clock, select)
        # gpiozero 2.0.1's software SPI bus asks for the default pin factory even when it is
        # given one, and off a Pi there is none: let this mock factory be the default.
        Device.pin_factory = self.factory
        if key not in self.adcs:
            self.adcs[key] = MockMCP3xxx(self.factory, clock, mosi, miso, select, bits=bits, vref=vref)
        return self.adcs[key]

    def _drive(self, drift: Drift, apply: Callable[[float], None]) -> None:
        if self.simulate:
            apply(drift.at(time.monotonic()))
            self._drivers.append((drift, apply))
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="livedash-simulator", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.TICK_S):
            now = time.monotonic()
            for drift, apply in list(self._drivers):
                apply(drift.at(now))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for adc in self.adcs.values():
            adc.close()
