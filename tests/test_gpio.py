"""GPIO sensors on gpiozero's MockFactory, read through the normal code path.

The mock pins have real timing (an echo lasts echo_time, a capacitor charges in charge_time),
so these are the same reads a Pi makes, with the pins set to exact values. Real timing on a
loaded machine reads a little long now and then, and a sensor's queue of readings turns over
at its own pace: so each test waits, with a deadline, for the reading it expects.
"""

import math

import pytest
from gpiozero.pins.mock import MockFactory

from app.config import load
from app.sensors.distance import SPEED_OF_SOUND
from app.simulator import Simulator
from app.sources import SensorFault, open_source
from tests.support.server import wait_until


def channel(tmp_path, text):
    path = tmp_path / "livedash.toml"
    path.write_text(text)
    return load(str(path), environ={}).channels[0]


@pytest.fixture
def pins():
    factory = MockFactory()
    simulator = Simulator(factory, simulate=False)
    yield factory, simulator
    simulator.stop()
    factory.close()


def test_distance_sensor_reads_the_echo_time_as_centimetres(tmp_path, pins):
    factory, simulator = pins
    # Far targets (1.5 m and 3 m: echoes of 9 and 17 ms) so that a late wake-up of the mock
    # pin's timer, a millisecond on a loaded machine (17 cm), is a few percent, not a third.
    c = channel(tmp_path, '[[channels]]\nname="d"\nsource="distance"\necho_pin=17\ntrigger_pin=18\n'
                          'max_distance=4\n')
    simulator.attach(c)
    factory.pin(18).echo_time = 2 * 1.5 / SPEED_OF_SOUND
    source = open_source(c, factory)
    try:
        reads_near(source, 150, 15)
        factory.pin(18).echo_time = 2 * 3.0 / SPEED_OF_SOUND
        reads_near(source, 300, 30)  # once the sensor's own queue of readings turns over
    finally:
        source.close()


def reads_near(source, expected, tolerance, timeout=20):
    """Wait for a reading within *tolerance* of *expected*; the readings seen, if none came."""
    seen = []

    def near():
        seen.append(source.read())
        return abs(seen[-1] - expected) <= tolerance

    try:
        wait_until(near, timeout=timeout, what=f"a reading of {expected} +/- {tolerance}")
    except TimeoutError as e:
        raise AssertionError(f"{e}; read {seen[-20:]}") from None


def test_light_sensor_reads_the_charge_time_as_percent(tmp_path, pins):
    factory, simulator = pins
    # A long limit (0.1 s) so that a late wake-up of a few ms is a few percent, not a third.
    c = channel(tmp_path, '[[channels]]\nname="l"\nsource="light"\npin=4\ncharge_time_limit=0.1\n')
    simulator.attach(c)
    factory.pin(4).charge_time = 0.025  # a quarter of the limit: bright
    source = open_source(c, factory)
    try:
        reads_near(source, 75, 8)
        factory.pin(4).charge_time = 0.075
        reads_near(source, 25, 8)
    finally:
        source.close()


def test_adc_reads_volts_and_scales_them_to_the_channel_unit(tmp_path, pins):
    factory, simulator = pins
    tmp36 = channel(tmp_path, """[[channels]]
name = "temp"
source = "adc"
adc_channel = 2
vref = 3.3
scale_from = [0.5, 1.5]
scale_to = [0.0, 100.0]
unit = "°C"
decimals = 1
""")
    simulator.attach(tmp36)
    adc = simulator.mocks[("adc", 11, 8)]
    adc.volts[2] = 0.75
    source = open_source(tmp36, factory)
    try:
        assert source.read() == pytest.approx(25.0, abs=0.4)  # a 10-bit step is 3.2 mV, 0.3 degrees
        adc.volts[2] = 1.0
        assert source.read() == pytest.approx(50.0, abs=0.4)
        adc.volts[1] = 3.0  # another input of the same chip does not leak in
        assert source.read() == pytest.approx(50.0, abs=0.4)
    finally:
        source.close()


def test_a_reading_outside_the_valid_range_is_a_fault_until_it_comes_back(tmp_path, pins):
    factory, simulator = pins
    tmp36 = channel(tmp_path, """[[channels]]
name = "temp"
source = "adc"
scale_from = [0.5, 1.5]
scale_to = [0.0, 100.0]
unit = "°C"
valid_min = -40
valid_max = 125
""")
    simulator.attach(tmp36)
    adc = simulator.mocks[("adc", 11, 8)]
    source = open_source(tmp36, factory)
    try:
        adc.volts[0] = 0.0  # its ground wire came loose: -50 °C
        with pytest.raises(SensorFault, match=r"reading -(49\.\d+|50) °C outside -40\.\.125"):
            source.read()
        adc.volts[0] = 3.3  # or its supply shorted to the output
        with pytest.raises(SensorFault, match="outside"):
            source.read()
        adc.volts[0] = 0.75
        assert source.read() == pytest.approx(25.0, abs=0.4)
    finally:
        source.close()


def test_two_channels_of_one_adc_share_the_bus(tmp_path, pins):
    factory, simulator = pins
    path = tmp_path / "livedash.toml"
    path.write_text('[[channels]]\nname="a"\nsource="adc"\nadc_channel=0\n'
                    '[[channels]]\nname="b"\nsource="adc"\nadc_channel=1\n')
    a, b = load(str(path), environ={}).channels
    simulator.attach(a)
    simulator.attach(b)
    simulator.mocks[("adc", 11, 8)].volts[:2] = [1.0, 2.0]
    sa, sb = open_source(a, factory), open_source(b, factory)
    try:
        assert (sa.read(), sb.read()) == (pytest.approx(1.0, abs=0.005), pytest.approx(2.0, abs=0.005))
    finally:
        sa.close()
        sb.close()


def test_an_adc_that_gives_nonsense_is_a_fault(tmp_path, pins):
    factory, simulator = pins
    c = channel(tmp_path, '[[channels]]\nname="v"\nsource="adc"\n')
    simulator.attach(c)
    source = open_source(c, factory)
    try:
        simulator.mocks[("adc", 11, 8)].volts[0] = math.nan  # a chip that answers garbage raises in the read
        with pytest.raises(Exception):
            source.read()
    finally:
        source.close()


def test_simulated_pins_drift_like_a_live_sensor(tmp_path):
    factory = MockFactory()
    simulator = Simulator(factory, simulate=True)
    c = channel(tmp_path, '[[channels]]\nname="d"\nsource="distance"\n')
    simulator.attach(c)
    source = open_source(c, factory)
    try:
        readings = []
        wait_until(lambda: readings.append(source.read()) or len(set(readings)) > 2, timeout=20, interval=0.2,
                   what="the simulated distance to move")
        # It drifts between 20 and 150 cm; a late echo on a busy machine reads long, never past max_distance.
        assert all(15 <= r <= 200 for r in readings), readings
    finally:
        source.close()
        simulator.stop()
        factory.close()


def test_finite_refuses_none_and_nan():
    from app.sources import finite

    with pytest.raises(SensorFault, match="no reading"):
        finite(None)
    with pytest.raises(SensorFault, match="nan"):
        finite(float("nan"))
    assert finite(3) == 3.0
