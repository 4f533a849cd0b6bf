"""Which gpiozero pin factory each channel's sensor gets.

On a Raspberry Pi gpiozero's own default (lgpio) is right. Anywhere else there is no GPIO,
so "auto" means mock pins, driven by the simulator so the page still looks alive. The choice
is made here, explicitly, and never by gpiozero guessing from what is installed.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .config import ChannelConfig, GpioConfig

log = logging.getLogger(__name__)

MODEL_FILE = Path("/proc/device-tree/model")


def on_raspberry_pi() -> bool:
    try:
        return MODEL_FILE.read_text(errors="replace").startswith("Raspberry Pi")
    except OSError:
        return False


class Pins:
    """The pin factories of one running app; closed with it."""

    def __init__(self, gpio: GpioConfig):
        self.gpio = gpio
        self.simulator = None  # a Simulator, once a channel is on mock pins
        self._factories: dict[str, Any] = {}
        self._lock = threading.Lock()  # samplers open their sources on their own threads

    def factory_for(self, channel: ChannelConfig) -> Any:
        """The factory for *channel*'s sensor, its mock pins wired first when it is "mock"."""
        if channel.source == "random":
            return None
        with self._lock:
            name = self.resolve(channel.pin_factory or self.gpio.pin_factory)
            factory = self._factory(name)
            if name == "mock":
                self.simulator.attach(channel)
            return factory

    @staticmethod
    def resolve(name: str) -> str:
        if name != "auto":
            return name
        if on_raspberry_pi():
            return "lgpio"
        log.info("no Raspberry Pi GPIO here: sensors run on gpiozero's mock pins")
        return "mock"

    def _factory(self, name: str) -> Any:
        if name not in self._factories:
            if name == "mock":
                from gpiozero.pins.mock import MockFactory

                from .simulator import Simulator

                self._factories[name] = MockFactory()
                self.simulator = Simulator(self._factories[name], simulate=self.gpio.simulate)
            else:
                group = entry_points(group="gpiozero_pin_factories")
                self._factories[name] = next(ep for ep in group if ep.name == name).load()()
        return self._factories[name]

    def close(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()
        for factory in self._factories.values():
            factory.close()
