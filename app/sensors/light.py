"""``source = "light"``: an LDR and a capacitor on one pin, gpiozero's LightSensor.

The capacitor charges through the LDR: the brighter, the sooner the pin reads high. The
sensor reads 0 (dark, no charge within the limit) to 1; a channel shows percent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import Number, Pin, setting
from ..simulator import Drift
from . import Kind


@dataclass(frozen=True)
class Options:
    pin: int = setting(4, Pin(), "GPIO between the LDR and the capacitor")
    charge_time_limit: float = setting(0.01, Number(high=1.0, above=0.0),
                                       "seconds; a charge slower than this reads as dark")


def open_sensor(options: Options, pin_factory) -> tuple:
    from gpiozero import LightSensor

    sensor = LightSensor(options.pin, charge_time_limit=options.charge_time_limit, pin_factory=pin_factory)
    return (lambda: sensor.value), [sensor]  # 0 dark .. 1 light


def mock(options: Options, simulator) -> None:
    """A pin that charges after ``charge_time``; the simulator moves the light level."""
    from gpiozero.pins.mock import MockChargingPin

    limit = options.charge_time_limit
    pin = simulator.factory.pin(options.pin, pin_class=MockChargingPin, charge_time=limit / 2)
    simulator.drive(Drift(0.2, 0.9, period_s=120), lambda level: setattr(pin, "charge_time", limit * (1 - level)))


KIND = Kind(
    name="light", reads="LDR + capacitor via `LightSensor`; shown in %",
    options=Options, open=open_sensor, mock=mock,
    shows={"unit": "%", "decimals": 0, "scale_from": (0.0, 1.0), "scale_to": (0.0, 100.0),
           "display_min": 0.0, "display_max": 100.0},
)
