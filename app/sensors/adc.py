"""``source = "adc"``: one input of an MCP3xxx ADC on SPI, read as volts (the chip's 0..1 times vref).

Scale the volts to your unit in the channel (``scale_from``/``scale_to``): a TMP36 is
``[0.5, 1.5]`` V to ``[0, 100]`` °C. Channels on one chip share its SPI bus (and so its pins).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import Choice, Number, Pin, Whole, setting
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


KIND = Kind(
    name="adc", reads="volts from an MCP3xxx; scale them to your unit",
    options=Options, shares_pins=True,
    shows={"unit": "V", "decimals": 3},
)
