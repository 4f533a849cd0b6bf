"""Sources: the things a channel reads (a kind from app/sensors/), made ready for the sampler.

To the sampler every source looks alike: ``read()`` gives one reading in the channel's unit
or raises, ``close()`` lets go of the hardware. A source is the device's own reading
followed by small steps (scale to the unit, refuse nonsense, round), composed here rather
than written into each sensor, the way gpiozero's ``tools`` compose ``values``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from .config import ChannelConfig
from .sensors import KINDS, Reader


class SensorFault(Exception):
    """A reading that cannot be shown: the message is the reason the page displays."""


class Source:
    """A reader and the gpiozero devices behind it, closed together."""

    def __init__(self, read: Reader, devices: Iterable[Any] = ()):
        self.read = read
        self.devices = tuple(devices)

    def close(self) -> None:
        for device in self.devices:
            device.close()


def open_source(channel: ChannelConfig, pin_factory: Any = None) -> Source:
    """Build *channel*'s source on *pin_factory* (None: gpiozero's default)."""
    read, devices = KINDS[channel.source].open(channel.options, pin_factory)
    return Source(chain(read, *steps_for(channel)), devices)


def steps_for(channel: ChannelConfig) -> list[Callable[[Any], float]]:
    """What turns a raw reading into the channel's value; a kind that is fed, not read (mqtt), uses it too."""
    steps = [finite]
    if channel.scale_from is not None:
        steps.append(linear(channel.scale_from, channel.scale_to))
    if channel.valid_min is not None or channel.valid_max is not None:
        steps.append(within(channel.valid_min, channel.valid_max, channel.unit))
    steps.append(rounded(channel.decimals))
    return steps


# The steps: each takes a reading and gives the next.

def chain(read: Reader, *steps: Callable[[float], float]) -> Reader:
    def chained() -> float:
        value = read()
        for step in steps:
            value = step(value)
        return value
    return chained


def finite(value: Any) -> float:
    """A sensor that has lost its echo or its wire gives None or NaN; that is a fault, not a number."""
    if value is None:
        raise SensorFault("no reading from the sensor")
    value = float(value)
    if not math.isfinite(value):
        raise SensorFault(f"sensor gave {value}")
    return value


def linear(from_: tuple[float, float], to: tuple[float, float]) -> Callable[[float], float]:
    """The two-point map of a calibration: from_[0] reads as to[0], from_[1] as to[1]."""
    (a, b), (c, d) = from_, to
    slope = (d - c) / (b - a)
    return lambda value: c + (value - a) * slope


def within(low: float | None, high: float | None, unit: str = "") -> Callable[[float], float]:
    """A TMP36 reading 300 °C has lost its ground: say so on the page rather than chart it."""
    def check(value: float) -> float:
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
            raise SensorFault(f"reading {value:g}{unit and ' ' + unit} outside {bounds}")
        return value
    return check


def rounded(decimals: int) -> Callable[[float], float]:
    return lambda value: round(value, decimals)
