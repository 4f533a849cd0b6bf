"""Sensor kinds: each module here is one ``source =`` a channel may name, whole.

A kind's module declares, in one place, what gpiozero keeps on a device's class: its own
keys with their defaults, checks and help (a dataclass of ``setting`` fields), what a
channel of it shows by default, how it opens on gpiozero, and how the simulator moves its
mock pins. Adding a kind (a DS18B20 on 1-Wire, a BME280 on I2C) is a new module with a
``KIND`` and its name in ``NAMES``; the config, the sources, the simulator and the README's
tables take it from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from importlib import import_module
from typing import Any, Callable, Mapping

from ..schema import Pin

Reader = Callable[[], float]

# In the order the README and the error messages list them.
NAMES = ("random", "distance", "light", "adc", "mqtt")


@dataclass(frozen=True)
class Kind:
    name: str
    reads: str  # one line for the README: what it is and what it reads
    options: type  # a dataclass of ``setting`` fields: the kind's own keys in a [[channels]] table
    # (options, pin_factory) -> (read, devices): read gives the natural unit; devices are closed after.
    open: Callable[[Any, Any], tuple[Reader, list]]
    # What a channel of this kind shows when its table does not say: unit, decimals, scale_from...
    shows: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] = field(default_factory=dict)
    # (options, simulator): make the mock pins the sensor will find, and drive them (app/simulator.py).
    # None: the kind has no GPIO pins (random) and gets no pin factory.
    mock: Callable[[Any, Any], None] | None = None
    # options -> (key, problem) when the keys disagree with each other; None when they agree.
    check: Callable[[Any], tuple[str, str] | None] = lambda options: None
    shares_pins: bool = False  # channels of this kind may share pins (an SPI bus)
    fed: bool = False  # its samples come to it (mqtt): no sampler reads it, ``open`` is never called

    def defaults(self, options: Any) -> Mapping[str, Any]:
        return self.shows(options) if callable(self.shows) else self.shows

    def pins(self, options: Any) -> dict[str, int]:
        """The option keys that are GPIO pins, and their numbers."""
        return {f.name: getattr(options, f.name) for f in fields(options)
                if isinstance(f.metadata.get("check"), Pin)}


KINDS: dict[str, Kind] = {name: import_module(f".{name}", __name__).KIND for name in NAMES}
