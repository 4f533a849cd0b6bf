"""``source = "random"``: a uniform random number, as in the tutorial livedash grew from; no hardware."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..schema import Number, setting
from . import Kind


@dataclass(frozen=True)
class Options:
    min: float = setting(0.0, Number(), "the lowest it draws (and the chart's floor)")
    max: float = setting(10.0, Number(), "the highest it draws (and the chart's ceiling)")


def open_random(options: Options, pin_factory) -> tuple:
    generator = random.Random()
    return (lambda: generator.uniform(options.min, options.max)), []


def check(options: Options):
    if options.min >= options.max:
        return "max", f"expected more than min ({options.min})"
    return None


KIND = Kind(
    name="random", reads="a uniform random number, as in the tutorial (3 decimals)",
    options=Options, open=open_random, check=check,
    # The range it draws from is the chart's natural range.
    shows=lambda o: {"decimals": 3, "display_min": o.min, "display_max": o.max},
)
