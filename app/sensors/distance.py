"""``source = "distance"``: an HC-SR04 ultrasonic sensor on gpiozero's DistanceSensor.

The sensor reads metres (the echo's round trip at the speed of sound); a channel shows
centimetres. Its echo is 5 V: it goes to the Pi through a divider.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..schema import Number, Pin, setting
from . import Kind

SPEED_OF_SOUND = 343.26  # m/s, as gpiozero's DistanceSensor assumes

# DistanceSensor suggests pigpio for accuracy on every start; there is no pigpio on a Pi 5,
# and its smoothing queue is accurate enough for a dashboard.
warnings.filterwarnings("ignore", message="For more accurate readings, use the pigpio pin factory")


@dataclass(frozen=True)
class Options:
    echo_pin: int = setting(17, Pin(), "GPIO the echo comes back on (through a divider)")
    trigger_pin: int = setting(18, Pin(), "GPIO that sends the ping")
    max_distance: float = setting(2.0, Number(high=10.0, above=0.0), "metres; farther reads as this")


KIND = Kind(
    name="distance", reads="HC-SR04 via `DistanceSensor`; shown in cm",
    options=Options,
    shows={"unit": "cm", "decimals": 1, "scale_from": (0.0, 1.0), "scale_to": (0.0, 100.0)},
)
