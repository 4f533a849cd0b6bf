"""Which gpiozero pin factory each channel's sensor gets.

On a Raspberry Pi gpiozero's own default (lgpio, then its fallbacks) is right. Anywhere else
there is no GPIO, so "auto" means mock pins, driven by the simulator so the page still looks
alive. Mock pins are chosen here, explicitly: gpiozero never picks them by itself.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .config import ChannelConfig, GpioConfig
from .sensors import KINDS

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
        self._resolved: dict[str, str] = {}
        self._lock = threading.Lock()  # samplers open their sources on their own threads

    def factory_for(self, channel: ChannelConfig) -> Any:
        """The factory for *channel*'s sensor, its mock pins wired first when it is "mock"."""
        if KINDS[channel.source].mock is None:  # no pins at all (random)
            return None
        with self._lock:
            name = self._resolve(channel.pin_factory or self.gpio.pin_factory)
            factory = self._factory(name)
            if name == "mock":
                self.simulator.attach(channel)
            return factory

    def _resolve(self, name: str) -> str:
        if name != "auto":
            return name
        if "auto" not in self._resolved:
            self._resolved["auto"] = "default" if on_raspberry_pi() else "mock"
            if self._resolved["auto"] == "mock":
                log.info("no Raspberry Pi GPIO here: sensors run on gpiozero's mock pins")
        return self._resolved["auto"]

    def _factory(self, name: str) -> Any:
        if name == "default":
            return None  # gpiozero picks: lgpio, then its fallbacks
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
