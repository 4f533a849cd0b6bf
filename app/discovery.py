"""Home Assistant MQTT discovery: what makes livedash's channels appear there as sensors.

Each published channel gets a retained ``<discovery_prefix>/sensor/<node>/<channel>/config``
(Home Assistant's own layout); an empty retained payload there removes the entity. One
device per Pi (``identifiers``: the node), so its sensors are grouped under it.

A ``device_class`` is given only where the channel's unit is one Home Assistant accepts for
that class: it refuses, say, ``illuminance`` in %, so a light sensor in % has none.
"""

from __future__ import annotations

import re
from typing import Any

from .config import ChannelConfig

# Units Home Assistant accepts for a sensor's device class, and that class.
DEVICE_CLASSES: dict[str, str] = {
    **dict.fromkeys(("°C", "°F", "K"), "temperature"),
    **dict.fromkeys(("mm", "cm", "m", "km", "in", "ft", "yd", "mi"), "distance"),
    "lx": "illuminance",
    **dict.fromkeys(("µV", "mV", "V", "kV"), "voltage"),
    **dict.fromkeys(("mA", "A"), "current"),
    **dict.fromkeys(("mW", "W", "kW"), "power"),
    **dict.fromkeys(("Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"), "pressure"),
    **dict.fromkeys(("Hz", "kHz", "MHz", "GHz"), "frequency"),
}


def node_id(topic_prefix: str) -> str:
    """The node id Home Assistant allows (letters, digits, _ and -), unique as the prefix is."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic_prefix)


def config_topic(discovery_prefix: str, node: str, channel: str) -> str:
    return f"{discovery_prefix}/sensor/{node}/{channel}/config"


def sensor_config(channel: ChannelConfig, topic_prefix: str, qos: int) -> dict[str, Any]:
    """The discovery payload of one channel published under *topic_prefix*.

    Available only while the Pi is online (its will says offline) and the channel is ok: a
    sensor in fault is "unavailable" in Home Assistant rather than stuck on its last value.
    """
    node = node_id(topic_prefix)
    state_topic = f"{topic_prefix}/{channel.name}"
    payload: dict[str, Any] = {
        "name": channel.title,
        "unique_id": f"{node}_{channel.name}",
        "state_topic": state_topic,
        "value_template": "{{ value_json.value }}",
        "state_class": "measurement",
        "suggested_display_precision": channel.decimals,
        "availability": [
            {"topic": f"{topic_prefix}/availability"},
            {"topic": f"{state_topic}/status",
             "value_template": "{{ 'online' if value_json.status == 'ok' else 'offline' }}"},
        ],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": qos,
        "device": {"identifiers": [node], "name": topic_prefix.rsplit("/", 1)[-1],
                   "manufacturer": "livedash", "model": "Raspberry Pi"},
        "origin": {"name": "livedash"},
    }
    if channel.unit:
        payload["unit_of_measurement"] = channel.unit
    device_class = DEVICE_CLASSES.get(channel.unit)
    if device_class:
        payload["device_class"] = device_class
    return payload
