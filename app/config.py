"""livedash's configuration: every setting declared once, with the defaults a laptop needs.

Values come, weakest first, from the defaults below, one TOML file, ``LIVEDASH_*``
environment variables and command-line flags. Everything is checked here, at start-up,
so that a mistake stops the service with one line naming the file, the key and what
was expected, instead of a traceback an hour later when a sensor is first read.

Each setting is one line below: ``setting(default, check, help)`` (app/schema.py), with
``env=True`` for a ``LIVEDASH_<KEY>`` variable and ``flag=True`` for a ``--<key>`` flag
(or ``env="LIVEDASH_MQTT_HOST"``, ``flag="--mqtt-host"`` where a key is in two tables).
The checks, the variables, the flags and the README's tables are all derived from it.

- A server-level setting: a line in ServerConfig (or GpioConfig).
- A new table, like ``[mqtt]``: a frozen dataclass of settings, and one line in Config,
  ``mqtt: MqttConfig = table(MqttConfig, "what it is for")``.
- A per-channel key: a line in ChannelConfig; checks between keys go in ``_check_channel``.
- A sensor kind and its own keys: a module in app/sensors/ (see its docstring).

Then regenerate the README's tables: ``./scripts/run --print-config-table`` (a test
fails while they disagree).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .levels import Limits
from .schema import (Boolean, Choice, ConfigError, Number, Pair, Pattern, Text, Topic, Whole, build,
                     default_of, only_keys, setting, settings)
from .sensors import KINDS

__all__ = ["Config", "ConfigError", "load"]

# Where the file is looked for when no --config / LIVEDASH_CONFIG names one.
SEARCH_PATH = (Path("livedash.toml"), Path("/etc/livedash/livedash.toml"))

MAX_RATE_HZ = 200.0
PIN_FACTORIES = Choice(("auto", "mock", "lgpio", "rpigpio", "pigpio", "native"))


def table(cls, help: str) -> Any:
    """A ``[name]`` table of the file, holding the settings declared on *cls*."""
    return field(default_factory=cls, metadata={"table": cls, "help": help})


@dataclass(frozen=True)
class ServerConfig:
    host: str = setting("0.0.0.0", Pattern(r"\S+", "an address or host name like 0.0.0.0"),
                        "address to listen on; all interfaces so the LAN can watch", env=True, flag=True)
    port: int = setting(5000, Whole(1, 65535), "port to listen on; the Pi's service uses 80", env=True, flag=True)
    async_mode: str = setting("eventlet", Choice(("eventlet", "threading")),
                              "how it serves, chosen here: never by what is installed", env=True, flag=True)
    state_dir: str = setting("", Text(), "empty: `$STATE_DIRECTORY` under systemd (`/var/lib/livedash`), "
                             "else `~/.local/state/livedash`; the saved history goes here", env=True, flag=True)
    history: int = setting(600, Whole(10, 100_000), "samples kept per channel, sent to each page on connect", env=True)
    save_interval_s: float = setting(300.0, Number(low=1.0, high=86400.0),
                                     "how often history is saved (also on stop); rarely, for the SD card")
    log_level: str = setting("info", Choice(("debug", "info", "warning", "error")), "how much goes to the log", env=True, flag=True)
    max_clients: int = setting(3000, Whole(1, 100_000), "open pages at once; one more is refused with the reason")
    max_clients_per_address: int = setting(100, Whole(1, 100_000), "so one runaway machine cannot take them all")
    max_frame_hz: float = setting(50.0, Number(low=1.0, high=MAX_RATE_HZ),
                                  "messages a second per page and channel; a faster channel (up to 200 Hz) sends "
                                  "its samples in lists (`samples`), every one of them; 20 halves the work again "
                                  "on a Pi Zero")
    client_timeout_s: float = setting(45.0, Number(low=1.0, high=3600.0),
                                      "a page that answers no ping (a hung tab, a phone gone from the Wi-Fi) is let "
                                      "go, with what was queued for it; it resyncs from history when it returns")
    send_backlog_bytes: int = setting(256 * 1024, Whole(16 * 1024, 256 * 1024 * 1024),
                                      "bytes of live frames a WebSocket page may fall behind (its socket full) "
                                      "before it is let go; it gets history when it returns (256 KiB: minutes "
                                      "of a 20 Hz channel)")


@dataclass(frozen=True)
class GpioConfig:
    pin_factory: str = setting("auto", PIN_FACTORIES, "`auto` is gpiozero's default on a Pi, `mock` elsewhere",
                               env=True, flag=True)
    simulate: bool = setting(True, Boolean(), "with mock pins, move them like a live sensor", env=True)


@dataclass(frozen=True)
class MqttConfig:
    host: str = setting("", Text(), "the MQTT broker; empty: no MQTT at all")
    port: int = setting(1883, Whole(1, 65535), "the broker's port; 8883 is the usual one for TLS")
    tls: bool = setting(False, Boolean(), "connect with TLS")
    ca_file: str = setting("", Text(), "with `tls`: the CA that signed the broker's certificate; empty: the system's")
    username: str = setting("", Text(), "empty: no login (brokers set up by the `mosquitto` role refuse that)")
    password_file: str = setting("", Text(), "a file holding the password alone, readable by the service")
    topic_prefix: str = setting("", Topic(), "topics go under it", shown="`livedash/<hostname>`")
    qos: int = setting(0, Whole(0, 1), "0: at most once; 1: at least once, resent after a reconnect")
    max_rate_hz: float = setting(10.0, Number(high=MAX_RATE_HZ, above=0.0),
                                 "per channel: every sample up to this rate, then the latest at this rate")
    discovery: bool = setting(True, Boolean(), "Home Assistant discovery entries for the published channels")
    discovery_prefix: str = setting("homeassistant", Topic(), "where Home Assistant looks for them")
    queue_size: int = setting(1000, Whole(10, 1_000_000), "messages kept while the broker is away; "
                              "beyond it the oldest are dropped, and counted")

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class ChannelConfig:
    name: str = setting("", Pattern(r"[a-z][a-z0-9_-]{0,31}", "a name of lowercase letters, digits, - and _ "
                                    "(starting with a letter, at most 32)"), "lowercase, unique", shown="required")
    source: str = setting("", Choice(KINDS.keys()), "one of the sources below", shown="required")
    rate_hz: float = setting(1.0, Number(high=MAX_RATE_HZ, above=0.0), "samples per second, up to 200")
    label: str = setting("", Text(), "what the page shows", shown="the name")
    unit: str = setting("", Text(), "shown beside the value", shown="per source")
    decimals: int = setting(3, Whole(0, 6), "rounding of the value sent", shown="per source")
    display_min: float | None = setting(None, Number(), "the chart's y range; none lets it follow the data",
                                        shown="per source")
    display_max: float | None = setting(None, Number(), "", shown="per source")
    valid_min: float | None = setting(None, Number(), "a reading outside (in the channel's unit) is a sensor "
                                      "fault shown on the page, not a value")
    valid_max: float | None = setting(None, Number(), "")
    scale_from: tuple[float, float] | None = setting(None, Pair(), "a two-point linear map from the sensor's "
                                                     "natural unit, e.g. TMP36 `[0.5, 1.5]` V ...", shown="per source")
    scale_to: tuple[float, float] | None = setting(None, Pair(), "... to `[0, 100]` °C", shown="per source")
    timeout_s: float = setting(2.0, Number(high=60.0, above=0.0), "a read taking longer is a fault")
    pin_factory: str = setting("", PIN_FACTORIES, "this channel's pins only", shown="`[gpio]`'s")
    # Levels (app/levels.py), in the channel's unit; none: no such limit.
    warn_above: float | None = setting(None, Number(), "limits: beyond one the card shows *warning* or *ALARM*, "
                                       "each crossing is a `level` event and a log line")
    warn_below: float | None = setting(None, Number(), "")
    alarm_above: float | None = setting(None, Number(), "")
    alarm_below: float | None = setting(None, Number(), "")
    hysteresis: float = setting(0.0, Number(low=0.0), "how far back inside a limit the value must come "
                                "before the level falls again")
    options: Any = None  # the source's own keys: its kind's Options (app/sensors/)

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def limits(self) -> Limits:
        return Limits(self.warn_above, self.warn_below, self.alarm_above, self.alarm_below, self.hysteresis)

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


DEFAULT_CHANNELS: tuple[dict[str, Any], ...] = (
    {"name": "random", "source": "random", "rate_hz": 1.0, "label": "Random", "min": 0, "max": 10, "decimals": 3},
)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = table(ServerConfig, "the web server")
    gpio: GpioConfig = table(GpioConfig, "the pins")
    mqtt: MqttConfig = table(MqttConfig, "the MQTT broker: publish, Home Assistant, mqtt channels")
    channels: tuple[ChannelConfig, ...] = ()
    path: str = ""  # the file it came from, for messages; empty when none was found

    def resolved_state_dir(self) -> Path:
        if self.server.state_dir:
            return Path(self.server.state_dir).expanduser()
        systemd_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        if systemd_dir:
            return Path(systemd_dir)
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(xdg) / "livedash"


# Derived from the declaration: the tables, and every setting by its dotted name.
TABLES = {f.name: f.metadata["table"] for f in fields(Config) if "table" in f.metadata}
SETTINGS = {f"{name}.{f.name}": f for name, cls in TABLES.items() for f in settings(cls)}


def _named(kind: str, default) -> dict[str, str]:
    """Each setting's environment variable or flag (*kind*), by name; two of one name are a mistake here."""
    named: dict[str, str] = {}
    for dotted, f in SETTINGS.items():
        if f.metadata[kind]:
            name = f.metadata[kind] if isinstance(f.metadata[kind], str) else default(f.name)
            if name in named:
                raise ValueError(f"{name} is declared for both {named[name]} and {dotted}: name one of them")
            named[name] = dotted
    return named


# LIVEDASH_* environment variables and the key each sets; anything else is a typo.
ENVIRONMENT = _named("env", lambda key: f"LIVEDASH_{key.upper()}")
# Command-line flags and the key each sets.
FLAGS = _named("flag", lambda key: f"--{key.replace('_', '-')}")


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
        config = _override(config, ENVIRONMENT[name], value, f"environment variable {name}")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            flag = next((f for f, d in FLAGS.items() if d == dotted), dotted)
            config = _override(config, dotted, value, f"command line {flag}")
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
    only_keys(raw, {*TABLES, "channels"}, where, "")
    tables = {name: build(cls, raw.get(name, {}), where, name) for name, cls in TABLES.items()}
    channel_tables = raw.get("channels", list(DEFAULT_CHANNELS))
    if not isinstance(channel_tables, list) or not channel_tables:
        raise ConfigError(where, "channels", "expected at least one [[channels]] table")
    channels = tuple(_channel(t, where, f"channels[{i}]") for i, t in enumerate(channel_tables))
    _check_unique(channels, where)
    _check_mqtt(tables["mqtt"], channels, where)
    return Config(**tables, channels=channels, path=where)


def _override(config: Config, dotted: str, value: Any, where: str) -> Config:
    table, key = dotted.split(".")
    checked = SETTINGS[dotted].metadata["check"](_from_text(value), where, dotted)
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
    common = {f.name: f for f in settings(ChannelConfig)}
    name = common["name"].metadata["check"](raw.get("name"), where, f"{key}.name")
    key = f"channels[{name}]"
    kind = KINDS[common["source"].metadata["check"](raw.get("source"), where, f"{key}.source")]
    own = {f.name for f in settings(kind.options)}
    only_keys(raw, set(common) | own, where, key)
    options = build(kind.options, {k: v for k, v in raw.items() if k in own}, where, key)
    channel = build(ChannelConfig, {k: v for k, v in raw.items() if k in common}, where, key)
    shown = {k: v for k, v in kind.defaults(options).items() if k not in raw}  # the kind's, unless said
    channel = replace(channel, options=options, **shown)
    _check_channel(channel, where, key)
    return channel


def _check_channel(c: ChannelConfig, where: str, key: str) -> None:
    if (c.scale_from is None) != (c.scale_to is None):
        raise ConfigError(where, f"{key}.scale_from", "scale_from and scale_to go together")
    if c.scale_from and c.scale_from[0] == c.scale_from[1]:
        raise ConfigError(where, f"{key}.scale_from", "expected two different numbers")
    problem = KINDS[c.source].check(c.options)
    if problem:
        raise ConfigError(where, f"{key}.{problem[0]}", problem[1])
    if None not in (c.display_min, c.display_max) and c.display_min >= c.display_max:
        raise ConfigError(where, f"{key}.display_max", "expected more than display_min")
    if None not in (c.valid_min, c.valid_max) and c.valid_min >= c.valid_max:
        raise ConfigError(where, f"{key}.valid_max", "expected more than valid_min")
    problem = c.limits.problem()
    if problem:
        raise ConfigError(where, f"{key}.{problem[0]}", problem[1])


def _check_mqtt(m: MqttConfig, channels: tuple[ChannelConfig, ...], where: str) -> None:
    if m.password_file and not m.username:
        raise ConfigError(where, "mqtt.password_file", "goes with a username")
    if m.ca_file and not m.tls:
        raise ConfigError(where, "mqtt.ca_file", "goes with tls = true")
    for key in ("password_file", "ca_file"):
        path = getattr(m, key)
        if path and not os.access(path, os.R_OK):
            raise ConfigError(where, f"mqtt.{key}", f"cannot read {path}")
    for c in channels:
        if KINDS[c.source].fed and not m.enabled:
            raise ConfigError(where, f"channels[{c.name}].source", f"{c.source} needs a broker: set [mqtt] host")


def _check_unique(channels: tuple[ChannelConfig, ...], where: str) -> None:
    """Names are unique; a pin belongs to one channel, except where a kind shares a bus (ADCs on SPI)."""
    names: set[str] = set()
    owners: dict[int, ChannelConfig] = {}
    for c in channels:
        if c.name in names:
            raise ConfigError(where, f"channels[{c.name}].name", "used by two channels")
        names.add(c.name)
        for k, pin in KINDS[c.source].pins(c.options).items():
            owner = owners.setdefault(pin, c)
            if owner is not c and not (owner.source == c.source and KINDS[c.source].shares_pins):
                raise ConfigError(where, f"channels[{c.name}].{k}", f"pin {pin} is already used by channel {owner.name}")
