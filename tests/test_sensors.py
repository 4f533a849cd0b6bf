"""A sensor kind is one module: declaring one is all the config, the sources, the simulator and the
README's tables need to know of it."""

from dataclasses import dataclass

import pytest
from gpiozero.pins.mock import MockFactory

from app import sensors
from app.config import ConfigError, load
from app.configdoc import tables
from app.schema import Pin, Whole, setting
from app.sensors import Kind
from app.simulator import Drift, Simulator
from app.sources import open_source


@dataclass(frozen=True)
class Options:
    pin: int = setting(5, Pin(), "GPIO of the float switch")
    litres: int = setting(20, Whole(1, 1000), "litres when full")


def open_switch(options, pin_factory):
    from gpiozero import DigitalInputDevice

    switch = DigitalInputDevice(options.pin, pin_factory=pin_factory)
    return (lambda: switch.value * options.litres), [switch]


def mock(options, simulator):
    pin = simulator.factory.pin(options.pin)
    simulator.drive(Drift(0, 1), lambda level: pin.drive_high() if level > 0.5 else pin.drive_low())


TANK = Kind(name="tank", reads="a float switch: full or empty", options=Options, open=open_switch, mock=mock,
            shows={"unit": "l", "decimals": 0})


@pytest.fixture
def tank_kind(monkeypatch):
    monkeypatch.setitem(sensors.KINDS, "tank", TANK)  # what a new module in NAMES does


def test_a_new_kind_is_checked_opened_simulated_and_documented_from_its_module(tmp_path, tank_kind):
    path = tmp_path / "livedash.toml"
    path.write_text('[[channels]]\nname = "water"\nsource = "tank"\nlitres = 50\n')
    [water] = load(str(path), environ={}).channels
    assert (water.options.pin, water.options.litres, water.unit, water.decimals) == (5, 50, "l", 0)

    factory = MockFactory()
    simulator = Simulator(factory, simulate=False)
    simulator.attach(water)
    source = open_source(water, factory)
    try:
        assert source.read() == 0
        factory.pin(5).drive_high()
        assert source.read() == 50
    finally:
        source.close()
        simulator.stop()
        factory.close()
    assert "| `tank` | a float switch: full or empty | `pin` (5), `litres` (20) |" in tables()
    assert "| `tank` `litres` | litres when full |" in tables()


def test_a_new_kinds_keys_are_checked_and_its_pins_are_its_own(tmp_path, tank_kind):
    path = tmp_path / "livedash.toml"
    path.write_text('[[channels]]\nname = "water"\nsource = "tank"\nlitres = 0\n')
    with pytest.raises(ConfigError, match=r"channels\[water\]\.litres: expected a whole number from 1 to 1000, got 0"):
        load(str(path), environ={})
    path.write_text('[[channels]]\nname = "water"\nsource = "tank"\npin = 4\n'
                    '[[channels]]\nname = "light"\nsource = "light"\n')
    with pytest.raises(ConfigError, match=r"channels\[light\]\.pin: pin 4 is already used by channel water"):
        load(str(path), environ={})
    path.write_text('[[channels]]\nname = "water"\nsource = "tanks"\n')
    with pytest.raises(ConfigError, match=r"expected one of random, distance, light, adc, mqtt, tank, got 'tanks'"):
        load(str(path), environ={})
