"""``source = "adc"``: one input of an MCP3xxx ADC on SPI, read as volts (the chip's 0..1 times vref).

Scale the volts to your unit in the channel (``scale_from``/``scale_to``): a TMP36 is
``[0.5, 1.5]`` V to ``[0, 100]`` °C. Channels on one chip share its SPI bus (and so its pins).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..schema import Choice, Number, Pin, Whole, setting
from ..simulator import Drift
from . import Kind

BITS = {"MCP3001": 10, "MCP3002": 10, "MCP3004": 10, "MCP3008": 10,
        "MCP3201": 12, "MCP3202": 12, "MCP3204": 12, "MCP3208": 12}
SINGLE_INPUT = ("MCP3001", "MCP3201")  # no channel to choose


@dataclass(frozen=True)
class Options:
    chip: str = setting("MCP3008", Choice(tuple(BITS)), "which MCP3xxx")
    adc_channel: int = setting(0, Whole(0, 7), "the chip's input")
    vref: float = setting(3.3, Number(high=5.5, above=0.0), "volts at the chip's VREF: a full-scale reading")
    # The Pi's SPI0 pins.
    clock_pin: int = setting(11, Pin(), "SPI clock")
    mosi_pin: int = setting(10, Pin(), "SPI MOSI")
    miso_pin: int = setting(9, Pin(), "SPI MISO")
    select_pin: int = setting(8, Pin(), "SPI chip select")


def open_adc(options: Options, pin_factory) -> tuple:
    import gpiozero

    kwargs = {} if options.chip in SINGLE_INPUT else {"channel": options.adc_channel}
    adc = getattr(gpiozero, options.chip)(
        **kwargs, max_voltage=options.vref, clock_pin=options.clock_pin, mosi_pin=options.mosi_pin,
        miso_pin=options.miso_pin, select_pin=options.select_pin, pin_factory=pin_factory)
    return (lambda: adc.voltage), [adc]  # volts


def mock(options: Options, simulator) -> None:
    """The chip on its mock SPI pins, made once per bus; the simulator moves this input's volts."""
    from gpiozero import Device

    # gpiozero 2.0.1's software SPI bus asks for the default pin factory even when it is
    # given one, and off a Pi there is none: let this mock factory be the default.
    Device.pin_factory = simulator.factory
    key = ("adc", options.clock_pin, options.select_pin)
    chip = simulator.shared(key, lambda: mock_chip_class()(
        simulator.factory, options.clock_pin, options.mosi_pin, options.miso_pin, options.select_pin,
        bits=BITS[options.chip], vref=options.vref))
    index = options.adc_channel
    chip.volts[index] = 0.75
    # Around 0.75 V: 25 degrees C on a TMP36, the sensor this input is most often used for.
    simulator.drive(Drift(0.65, 0.85, period_s=150, noise=0.005), lambda v: chip.volts.__setitem__(index, v))


@functools.cache
def mock_chip_class():
    """The chip side of an MCP3xxx on mock SPI pins; set ``volts[channel]`` to what it measures.

    gpiozero ships only the abstract MockSPIDevice (its ready MCP3xxx mocks live in its test
    suite). The conversation: a start bit, single/differential, the channel number, then the
    chip answers with a null bit and the result, most significant bit first. Made on first use,
    so reading the config does not import gpiozero.
    """
    from gpiozero.pins.mock import MockSPIDevice

    class MockMCP3xxx(MockSPIDevice):
        def __init__(self, factory, clock_pin, mosi_pin, miso_pin, select_pin, *, bits=10, vref=3.3):
            super().__init__(clock_pin, mosi_pin, miso_pin, select_pin, pin_factory=factory)
            self.bits, self.vref = bits, vref
            self.volts = [0.0] * 8
            self.state = "idle"

        def on_start(self):
            super().on_start()
            self.state = "idle"

        def on_bit(self):
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

    return MockMCP3xxx


KIND = Kind(
    name="adc", reads="volts from an MCP3xxx; scale them to your unit",
    options=Options, open=open_adc, mock=mock, shares_pins=True,
    shows={"unit": "V", "decimals": 3},
)
