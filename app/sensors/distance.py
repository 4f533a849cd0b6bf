"""``source = "distance"``: an HC-SR04 ultrasonic sensor on gpiozero's DistanceSensor.

The sensor reads metres (the echo's round trip at the speed of sound); a channel shows
centimetres. Its echo is 5 V: it goes to the Pi through a divider.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..schema import Number, Pin, setting
from ..simulator import Drift
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


def open_sensor(options: Options, pin_factory) -> tuple:
    from gpiozero import DistanceSensor

    sensor = DistanceSensor(echo=options.echo_pin, trigger=options.trigger_pin,
                            max_distance=options.max_distance, pin_factory=pin_factory)
    return (lambda: sensor.distance), [sensor]  # metres


def echo_time(metres: float) -> float:
    """How long the echo pin stays high for something *metres* away: there and back."""
    return 2 * metres / SPEED_OF_SOUND


def mock(options: Options, simulator) -> None:
    """A trigger pin that answers each ping with an echo; the simulator moves the distance."""
    from gpiozero.pins.mock import MockTriggerPin

    echo = simulator.factory.pin(options.echo_pin)
    trigger = simulator.factory.pin(options.trigger_pin, pin_class=MockTriggerPin,
                                    echo_pin=echo, echo_time=echo_time(0.5))
    metres = Drift(0.2, min(1.5, options.max_distance * 0.9), period_s=60)
    simulator.drive(metres, lambda m: setattr(trigger, "echo_time", echo_time(m)))


KIND = Kind(
    name="distance", reads="HC-SR04 via `DistanceSensor`; shown in cm",
    options=Options, open=open_sensor, mock=mock,
    shows={"unit": "cm", "decimals": 1, "scale_from": (0.0, 1.0), "scale_to": (0.0, 100.0)},
)
