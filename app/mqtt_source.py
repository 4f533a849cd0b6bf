"""The mqtt source at work: payloads of a subscribed topic turned into samples and faults.

Its keys are declared with the other kinds, in app/sensors/mqtt.py; app/mqtt.py subscribes.

Unlike the sensors it is not read at a rate: each message is a sample, handed to the hub as
it arrives (paho's thread posts to the hub's thread-safe inbox, as samplers do). The payload
is a bare number, or JSON and the dotted ``json_key`` of the number (``value`` for another
livedash, ``AM2301.Temperature`` for a Tasmota). It then goes through the channel's own
steps (scale, valid range, rounding), like a sensor's reading.

Faults are this channel's alone: a payload that is not a number, the publisher's
availability topic saying ``offline`` (its last will: it died or lost the network), the
publisher's livedash status saying fault, or our own broker connection gone.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from .config import ChannelConfig
from .sources import SensorFault, steps_for

DAY_MS = 86_400_000.0  # a "t" further than this from our clock is not a time we can chart
Post = Callable[[str, float, float | None, str | None], None]


class Feed:
    """One mqtt channel: what its topics say, turned into samples and faults for the hub."""

    def __init__(self, channel: ChannelConfig, post: Post):
        options = channel.options  # app/sensors/mqtt.py declares them
        self.channel = channel
        self.topic: str = options.topic
        self.json_key: str = options.json_key
        self.availability_topic: str = options.availability_topic
        self.status_topic: str = options.status_topic
        self._steps = steps_for(channel)
        self._post = post
        self.online = True  # until its availability topic says otherwise
        self.received = 0
        self.refused = 0  # payloads that were not a number

    def subscriptions(self) -> list[tuple[str, Callable[[bytes], None]]]:
        """Availability first: a retained "offline" arrives before the retained last value."""
        topics = [(self.availability_topic, self.on_availability), (self.status_topic, self.on_status),
                  (self.topic, self.on_value)]
        return [(topic, handler) for topic, handler in topics if topic]

    def on_value(self, payload: bytes) -> None:
        if not payload:  # a retained value its publisher cleared: nothing to show
            return
        self.received += 1
        if not self.online:
            return  # the publisher said offline; its fault stands until it is back
        try:
            value, t = self._number(payload)
            for step in self._steps:
                value = step(value)
        except SensorFault as e:
            self.refused += 1
            self._fault(f"bad payload on {self.topic}: {e}")
            return
        self._post(self.channel.name, t, value, None)

    def _number(self, payload: bytes) -> tuple[Any, float]:
        """The number in *payload*, and when it was read: another livedash says so in its ``t``
        (so a burst after a reconnect is charted when it was measured); else now."""
        now = time.time() * 1000
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SensorFault("not UTF-8 text") from None
        if not self.json_key:
            try:
                return float(text), now
            except ValueError:
                raise SensorFault(f"expected a number, got {text[:40]!r}") from None
        try:
            value = json.loads(text)
        except ValueError:
            raise SensorFault(f"expected JSON with {self.json_key!r}, got {text[:40]!r}") from None
        t = value.get("t") if isinstance(value, dict) else None
        t = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and abs(t - now) < DAY_MS else now
        for key in self.json_key.split("."):
            if not isinstance(value, dict) or key not in value:
                raise SensorFault(f"no {self.json_key!r} in {text[:40]!r}")
            value = value[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise SensorFault(f"{self.json_key!r} is not a number: {str(value)[:40]!r}")
        try:
            return float(value), t
        except ValueError:
            raise SensorFault(f"{self.json_key!r} is not a number: {value[:40]!r}") from None

    def on_availability(self, payload: bytes) -> None:
        said = payload.decode("utf-8", "replace").strip()
        if said == "offline":
            self.online = False
            self._fault(f"publisher offline ({self.availability_topic})")
        elif said == "online":
            self.online = True  # the fault ends with its next value

    def on_status(self, payload: bytes) -> None:
        """Another livedash's status of this channel: its sensor's fault is shown here too."""
        try:
            status = json.loads(payload)
        except ValueError:
            return
        if self.online and isinstance(status, dict) and status.get("status") == "fault":
            self._fault(f"at the publisher: {status.get('reason') or 'fault'}")

    def broker_lost(self, reason: str) -> None:
        self._fault(f"mqtt: disconnected: {reason}")

    def _fault(self, reason: str) -> None:
        self._post(self.channel.name, time.time() * 1000, None, reason)
