"""``source = "mqtt"``: a channel fed by a topic on the ``[mqtt]`` broker, from any MQTT device or another livedash.

It is not read at a rate: each message is a sample (app/mqtt_source.py turns payloads into
samples and faults; app/mqtt.py subscribes). The payload is a bare number, or JSON and the
dotted ``json_key`` of the number: ``value`` for another livedash, ``AM2301.Temperature``
for a Tasmota. The channel's ``rate_hz`` is what to expect: the page marks it stale after
three silent intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import Text, Topic, setting
from . import Kind


@dataclass(frozen=True)
class Options:
    topic: str = setting("", Topic(), "the topic its values come on", shown="required")
    json_key: str = setting("", Text(), "empty: the payload is a bare number; else JSON, and the "
                            "(dotted) key of the number")
    availability_topic: str = setting("", Topic(), "the publisher's availability (its last will): "
                                      "`offline` is this channel's fault")
    status_topic: str = setting("", Topic(), "another livedash's `<prefix>/<channel>/status`: its sensor's "
                                "fault is shown here too")


def never_opened(options: Options, pin_factory) -> tuple:
    raise RuntimeError("an mqtt channel is fed by the broker, never opened")


def check(options: Options):
    if not options.topic:
        return "topic", "expected the topic to subscribe to"
    return None


KIND = Kind(
    name="mqtt", reads="a topic on the `[mqtt]` broker: a bare number, or JSON with `json_key`",
    options=Options, open=never_opened, check=check, fed=True, shows={"decimals": 3},
)
