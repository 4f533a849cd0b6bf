"""livedash's configuration: one typed place, with the defaults a laptop needs.

Values come, weakest first, from the defaults below, one TOML file, ``LIVEDASH_*``
environment variables and command-line flags. Everything is checked here, at start-up,
so that a mistake stops the service with one line naming the file, the key and what
was expected, instead of a traceback an hour later when a sensor is first read.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Where the file is looked for when no --config / LIVEDASH_CONFIG names one.
SEARCH_PATH = (Path("livedash.toml"), Path("/etc/livedash/livedash.toml"))

ASYNC_MODES = ("eventlet", "threading")
PIN_FACTORIES = ("auto", "mock", "lgpio", "rpigpio", "pigpio", "native")
LOG_LEVELS = ("debug", "info", "warning", "error")
SOURCES = ("random", "distance", "light", "adc", "mqtt")
ADC_CHIPS = ("MCP3001", "MCP3002", "MCP3004", "MCP3008", "MCP3201", "MCP3202", "MCP3204", "MCP3208")
MAX_RATE_HZ = 200.0
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ConfigError(Exception):
    """A config value is wrong; the message is the one line a person reads."""

    def __init__(self, where: str, key: str, problem: str):
        super().__init__(f"{where}: {key}: {problem}")
        self.where, self.key, self.problem = where, key, problem


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"  # all interfaces, so the LAN can watch
    port: int = 5000
    async_mode: str = "eventlet"  # chosen here, never by what happens to be installed
    secret_key: str = ""  # empty: generated once and kept in state_dir
    state_dir: str = ""  # empty: $STATE_DIRECTORY (systemd), else ~/.local/state/livedash
    history: int = 600  # samples kept per channel
    save_interval_s: float = 300.0  # how often history is saved: rarely, SD cards wear
    log_level: str = "info"
    max_clients: int = 3000  # open pages at once; more are refused with a reason
    max_clients_per_address: int = 100  # so one runaway machine cannot take them all
    # Messages a second per client and channel; a faster channel sends its samples in lists.
    # 50: every channel up to 50 Hz still goes out as one `sample` event per sample.
    max_frame_hz: float = 50.0
    client_timeout_s: float = 45.0  # a client that answers no ping or takes nothing this long is let go


@dataclass(frozen=True)
class GpioConfig:
    pin_factory: str = "auto"  # auto: gpiozero's default on a Raspberry Pi, mock pins elsewhere
    simulate: bool = True  # with mock pins, drive them with a drifting signal (off in tests)


@dataclass(frozen=True)
class MqttConfig:
    """The broker livedash publishes to and subscribes from; no host, no MQTT (the default)."""
    host: str = ""
    port: int = 1883  # 8883 is the usual port for TLS
    tls: bool = False
    ca_file: str = ""  # with tls: the CA that signed the broker's certificate; empty: the system's
    username: str = ""
    password_file: str = ""  # the password alone, in a file only the service can read
    topic_prefix: str = ""  # empty: livedash/<hostname>
    qos: int = 0  # 0 or 1
    max_rate_hz: float = 10.0  # per channel: every sample up to this rate, then the latest at it
    discovery: bool = True  # Home Assistant discovery entries for the published channels
    discovery_prefix: str = "homeassistant"
    queue_size: int = 1000  # messages waiting for the broker; beyond it the oldest are dropped (counted)

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    source: str
    rate_hz: float = 1.0
    label: str = ""  # shown on the page; defaults to the name
    unit: str = ""
    decimals: int = 3
    display_min: float | None = None  # chart y-range hints; None lets the chart follow the data
    display_max: float | None = None
    valid_min: float | None = None  # a reading outside these, in the channel's unit, is a
    valid_max: float | None = None  # sensor fault (a loose wire), not a number to chart
    scale_from: tuple[float, float] | None = None  # two-point linear map from the source's
    scale_to: tuple[float, float] | None = None  # natural unit to the channel's unit
    timeout_s: float = 2.0  # a read taking longer than this is a fault
    pin_factory: str = ""  # empty: the [gpio] table's
    options: dict[str, Any] = field(default_factory=dict)  # the source's own keys, checked

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    channels: tuple[ChannelConfig, ...] = ()
    path: str = ""  # the file it came from, for messages; empty when none was found

    def channel(self, name: str) -> ChannelConfig:
        return next(c for c in self.channels if c.name == name)

    def resolved_state_dir(self) -> Path:
        if self.server.state_dir:
            return Path(self.server.state_dir).expanduser()
        systemd_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        if systemd_dir:
            return Path(systemd_dir)
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(xdg) / "livedash"


# The source's own keys and their defaults. A channel's table may hold these and the
# ChannelConfig keys above, nothing else.
SOURCE_OPTIONS: dict[str, dict[str, Any]] = {
    "random": {"min": 0.0, "max": 10.0},
    # HC-SR04 on gpiozero's DistanceSensor; reads metres, shown in cm by default.
    "distance": {"echo_pin": 17, "trigger_pin": 18, "max_distance": 2.0},
    # An LDR and a capacitor on one pin, gpiozero's LightSensor; reads 0..1.
    "light": {"pin": 4, "charge_time_limit": 0.01},
    # An MCP3xxx ADC on SPI (clock 11, MOSI 10, MISO 9, select 8 as on the Pi's SPI0);
    # reads volts: the chip's 0..1 times vref.
    "adc": {"chip": "MCP3008", "adc_channel": 0, "vref": 3.3,
            "clock_pin": 11, "mosi_pin": 10, "miso_pin": 9, "select_pin": 8},
    # A topic on the [mqtt] broker: a bare number, or JSON and the (dotted) key of the number;
    # a publisher's availability topic ("offline" is a fault) and livedash status topic.
    "mqtt": {"topic": "", "json_key": "", "availability_topic": "", "status_topic": ""},
}

# What a channel shows when its table does not say: the sensors' natural units made readable.
SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "random": {"decimals": 3},
    "distance": {"unit": "cm", "decimals": 1, "scale_from": (0.0, 1.0), "scale_to": (0.0, 100.0)},
    "light": {"unit": "%", "decimals": 0, "scale_from": (0.0, 1.0), "scale_to": (0.0, 100.0),
              "display_min": 0.0, "display_max": 100.0},
    "adc": {"unit": "V", "decimals": 3},
    "mqtt": {"decimals": 3},
}

DEFAULT_CHANNELS: tuple[dict[str, Any], ...] = (
    {"name": "random", "source": "random", "rate_hz": 1.0, "label": "Random", "min": 0, "max": 10, "decimals": 3},
)

# LIVEDASH_* environment variables and the key each sets; anything else is a typo.
ENVIRONMENT = {
    "LIVEDASH_HOST": ("server", "host"),
    "LIVEDASH_PORT": ("server", "port"),
    "LIVEDASH_ASYNC_MODE": ("server", "async_mode"),
    "LIVEDASH_SECRET_KEY": ("server", "secret_key"),
    "LIVEDASH_STATE_DIR": ("server", "state_dir"),
    "LIVEDASH_HISTORY": ("server", "history"),
    "LIVEDASH_LOG_LEVEL": ("server", "log_level"),
    "LIVEDASH_PIN_FACTORY": ("gpio", "pin_factory"),
    "LIVEDASH_SIMULATE": ("gpio", "simulate"),
}


def load(path: str | None = None, environ: dict[str, str] | None = None,
         overrides: dict[str, Any] | None = None) -> Config:
    """Build the config: defaults, then the file, then the environment, then *overrides*.

    *overrides* maps ``"table.key"`` to a value, as command-line flags give them.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get("LIVEDASH_CONFIG") or None
    raw, where = _read_file(path)
    config = _build(raw, where)
    for name, value in environ.items():
        if not name.startswith("LIVEDASH_") or name == "LIVEDASH_CONFIG":
            continue
        if name not in ENVIRONMENT:
            raise ConfigError(f"environment variable {name}", name,
                              f"unknown (expected one of {', '.join(sorted(ENVIRONMENT))})")
        table, key = ENVIRONMENT[name]
        config = _override(config, table, key, value, f"environment variable {name}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        table, key = dotted.split(".")
        config = _override(config, table, key, value, f"command line --{key.replace('_', '-')}")
    return config


def _read_file(path: str | None) -> tuple[dict[str, Any], str]:
    if path is None:
        found = next((p for p in SEARCH_PATH if p.is_file()), None)
        if found is None:
            return {}, "defaults"
        path = str(found)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f), path
    except FileNotFoundError:
        raise ConfigError(path, "file", "not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "file", f"cannot be read ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "file", f"is not valid TOML ({e})") from None


def _build(raw: dict[str, Any], where: str) -> Config:
    _only_keys(raw, {"server", "gpio", "mqtt", "channels"}, where, "")
    server = _table(ServerConfig, raw.get("server", {}), where, "server")
    gpio = _table(GpioConfig, raw.get("gpio", {}), where, "gpio")
    mqtt = _table(MqttConfig, raw.get("mqtt", {}), where, "mqtt")
    _check_mqtt(mqtt, where)
    channel_tables = raw.get("channels", list(DEFAULT_CHANNELS))
    if not isinstance(channel_tables, list) or not channel_tables:
        raise ConfigError(where, "channels", "expected at least one [[channels]] table")
    channels = tuple(_channel(t, where, f"channels[{i}]") for i, t in enumerate(channel_tables))
    _check_unique(channels, where)
    for c in channels:
        if c.source == "mqtt" and not mqtt.enabled:
            raise ConfigError(where, f"channels[{c.name}].source", "mqtt needs a broker: set [mqtt] host")
    return Config(server=server, gpio=gpio, mqtt=mqtt, channels=channels, path=where)


def _table(cls, raw: Any, where: str, name: str):
    if not isinstance(raw, dict):
        raise ConfigError(where, name, f"expected a table, got {raw!r}")
    known = {f.name for f in fields(cls)}
    _only_keys(raw, known, where, name)
    values = {key: CHECKS[(name, key)](value, where, f"{name}.{key}") for key, value in raw.items()}
    return cls(**values)


def _override(config: Config, table: str, key: str, value: Any, where: str) -> Config:
    checked = CHECKS[(table, key)](_from_text(value), where, f"{table}.{key}")
    return replace(config, **{table: replace(getattr(config, table), **{key: checked})})


def _from_text(value: Any) -> Any:
    """Environment and flags are text: read numbers and booleans the way TOML would."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _channel(raw: Any, where: str, key: str) -> ChannelConfig:
    if not isinstance(raw, dict):
        raise ConfigError(where, key, f"expected a table, got {raw!r}")
    name = _name(raw.get("name"), where, f"{key}.name")
    key = f"channels[{name}]"
    source = _choice(SOURCES)(raw.get("source"), where, f"{key}.source")
    options = dict(SOURCE_OPTIONS[source])
    common = {f.name for f in fields(ChannelConfig)} - {"options"}
    _only_keys(raw, common | set(options), where, key)
    values: dict[str, Any] = dict(SOURCE_DEFAULTS[source])
    for k, v in raw.items():
        if k in ("name", "source"):
            continue
        check = CHANNEL_CHECKS.get(k) or OPTION_CHECKS[(source, k)]
        checked = check(v, where, f"{key}.{k}")
        if k in options:
            options[k] = checked
        else:
            values[k] = checked
    if source == "random":  # the range it draws from is the chart's natural range
        values.setdefault("display_min", options["min"])
        values.setdefault("display_max", options["max"])
    channel = ChannelConfig(name=name, source=source, options=options, **values)
    _check_channel(channel, where, key)
    return channel


def _check_channel(c: ChannelConfig, where: str, key: str) -> None:
    if (c.scale_from is None) != (c.scale_to is None):
        raise ConfigError(where, f"{key}.scale_from", "scale_from and scale_to go together")
    if c.scale_from and c.scale_from[0] == c.scale_from[1]:
        raise ConfigError(where, f"{key}.scale_from", "expected two different numbers")
    if c.source == "random" and c.options["min"] >= c.options["max"]:
        raise ConfigError(where, f"{key}.max", f"expected more than min ({c.options['min']})")
    if None not in (c.display_min, c.display_max) and c.display_min >= c.display_max:
        raise ConfigError(where, f"{key}.display_max", "expected more than display_min")
    if None not in (c.valid_min, c.valid_max) and c.valid_min >= c.valid_max:
        raise ConfigError(where, f"{key}.valid_max", "expected more than valid_min")
    if c.source == "mqtt" and not c.options["topic"]:
        raise ConfigError(where, f"{key}.topic", "expected the topic to subscribe to")


def _check_mqtt(m: MqttConfig, where: str) -> None:
    if m.password_file and not m.username:
        raise ConfigError(where, "mqtt.password_file", "goes with a username")
    if m.ca_file and not m.tls:
        raise ConfigError(where, "mqtt.ca_file", "goes with tls = true")
    for key in ("password_file", "ca_file"):
        path = getattr(m, key)
        if path and not os.access(path, os.R_OK):
            raise ConfigError(where, f"mqtt.{key}", f"cannot read {path}")


def _check_unique(channels: tuple[ChannelConfig, ...], where: str) -> None:
    """Names are unique; a pin belongs to one channel, except that ADC channels share their SPI bus."""
    names: set[str] = set()
    owners: dict[int, ChannelConfig] = {}
    for c in channels:
        if c.name in names:
            raise ConfigError(where, f"channels[{c.name}].name", "used by two channels")
        names.add(c.name)
        for k, pin in c.options.items():
            if not (k == "pin" or k.endswith("_pin")):
                continue
            owner = owners.setdefault(pin, c)
            if owner is not c and not (owner.source == c.source == "adc"):
                raise ConfigError(where, f"channels[{c.name}].{k}", f"pin {pin} is already used by channel {owner.name}")


def _only_keys(raw: dict[str, Any], known: set[str], where: str, table: str) -> None:
    for key in raw:
        if key not in known:
            prefix = f"{table}." if table else ""
            raise ConfigError(where, f"{prefix}{key}", f"unknown key (expected one of {', '.join(sorted(known))})")


# Checks: each takes (value, where, key) and returns the value in its Python type.

def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(where, key, f"expected text, got {value!r}")
    return value


def _name(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ConfigError(where, key, f"expected a name of lowercase letters, digits, - and _ "
                                      f"(starting with a letter, at most 32), got {value!r}")
    return value


def _boolean(value: Any, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(where, key, f"expected true or false, got {value!r}")
    return value


def _integer(low: int, high: int):
    def check(value: Any, where: str, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(where, key, f"expected a whole number from {low} to {high}, got {value!r}")
        return value
    return check


def _number(low: float = -math.inf, high: float = math.inf, above: float | None = None):
    def check(value: Any, where: str, key: str) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and low <= value <= high and (above is None or value > above)
        if not ok:
            bounds = f"above {above}" if above is not None else ""
            if high != math.inf:
                bounds = f"{bounds} up to {high}".strip()
            raise ConfigError(where, key, f"expected a number {bounds}, got {value!r}".replace("  ", " "))
        return float(value)
    return check


def _pair(value: Any, where: str, key: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(where, key, f"expected two numbers like [0, 1], got {value!r}")
    return tuple(_number()(v, where, key) for v in value)  # type: ignore[return-value]


def _choice(choices: tuple[str, ...]):
    def check(value: Any, where: str, key: str) -> str:
        if value not in choices:
            raise ConfigError(where, key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value
    return check


def _host(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ConfigError(where, key, f"expected an address or host name like 0.0.0.0, got {value!r}")
    return value


def _topic(value: Any, where: str, key: str) -> str:
    """An MQTT topic to publish or subscribe to by name: no wildcards, no empty levels at the ends."""
    ok = isinstance(value, str) and not any(c in value for c in "+#\0") and len(value.encode()) < 1024
    if not ok or (value and (value.startswith("/") or value.endswith("/"))):
        raise ConfigError(where, key, f"expected an MQTT topic like livedash/kitchen (no + or #), got {value!r}")
    return value


_PIN = _integer(0, 27)  # the BCM GPIO numbers on a Raspberry Pi's header

CHECKS = {
    ("server", "host"): _host,
    ("server", "port"): _integer(1, 65535),
    ("server", "async_mode"): _choice(ASYNC_MODES),
    ("server", "secret_key"): _text,
    ("server", "state_dir"): _text,
    ("server", "history"): _integer(10, 100_000),
    ("server", "save_interval_s"): _number(low=1.0, high=86400.0),
    ("server", "log_level"): _choice(LOG_LEVELS),
    ("server", "max_clients"): _integer(1, 100_000),
    ("server", "max_clients_per_address"): _integer(1, 100_000),
    ("server", "max_frame_hz"): _number(low=1.0, high=MAX_RATE_HZ),
    ("server", "client_timeout_s"): _number(low=1.0, high=3600.0),
    ("gpio", "pin_factory"): _choice(PIN_FACTORIES),
    ("gpio", "simulate"): _boolean,
    ("mqtt", "host"): _text,
    ("mqtt", "port"): _integer(1, 65535),
    ("mqtt", "tls"): _boolean,
    ("mqtt", "ca_file"): _text,
    ("mqtt", "username"): _text,
    ("mqtt", "password_file"): _text,
    ("mqtt", "topic_prefix"): _topic,
    ("mqtt", "qos"): _integer(0, 1),
    ("mqtt", "max_rate_hz"): _number(high=MAX_RATE_HZ, above=0.0),
    ("mqtt", "discovery"): _boolean,
    ("mqtt", "discovery_prefix"): _topic,
    ("mqtt", "queue_size"): _integer(10, 1_000_000),
}

CHANNEL_CHECKS = {
    "rate_hz": _number(high=MAX_RATE_HZ, above=0.0),
    "label": _text,
    "unit": _text,
    "decimals": _integer(0, 6),
    "display_min": _number(),
    "display_max": _number(),
    "valid_min": _number(),
    "valid_max": _number(),
    "scale_from": _pair,
    "scale_to": _pair,
    "timeout_s": _number(high=60.0, above=0.0),
    "pin_factory": _choice(PIN_FACTORIES),
}

OPTION_CHECKS = {
    ("random", "min"): _number(),
    ("random", "max"): _number(),
    ("distance", "echo_pin"): _PIN,
    ("distance", "trigger_pin"): _PIN,
    ("distance", "max_distance"): _number(high=10.0, above=0.0),
    ("light", "pin"): _PIN,
    ("light", "charge_time_limit"): _number(high=1.0, above=0.0),
    ("adc", "chip"): _choice(ADC_CHIPS),
    ("adc", "adc_channel"): _integer(0, 7),
    ("adc", "vref"): _number(high=5.5, above=0.0),
    ("adc", "clock_pin"): _PIN,
    ("adc", "mosi_pin"): _PIN,
    ("adc", "miso_pin"): _PIN,
    ("adc", "select_pin"): _PIN,
    ("mqtt", "topic"): _topic,
    ("mqtt", "json_key"): _text,
    ("mqtt", "availability_topic"): _topic,
    ("mqtt", "status_topic"): _topic,
}
