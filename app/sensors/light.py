"""``source = "light"``: an LDR and a capacitor on one pin, gpiozero's LightSensor.

The capacitor charges through the LDR: the brighter, the sooner the pin reads high. The
sensor reads 0 (dark, no charge within the limit) to 1; a channel shows percent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import Number, Pin, setting
from . import Kind


@dataclass(frozen=True)
class Options:
    pin: int = setting(4, Pin(), "GPIO between the LDR and the capacitor")
    charge_time_limit: float = setting(0.01, Number(high=1.0, above=0.0),
                                       "seconds; a charge slower than this reads as dark")


KIND = Kind(
    name="light", reads="LDR + capacitor via `LightSensor`; shown in %",
    options=Options,
    shows={"unit": "%", "decimals": 0, "scale_from": (0.0, 1.0), "scale_to": (0.0, 100.0),
           "display_min": 0.0, "display_max": 100.0},
)
