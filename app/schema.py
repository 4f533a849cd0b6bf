"""The small vocabulary settings are declared in: typed dataclass fields that carry their check and help.

A setting is a dataclass field made by ``setting(default, check, help)``; ``build`` turns a
TOML table into that dataclass, checking every key, and every mistake is a ConfigError
naming the file, the key, what was expected and what was given. The checks also describe
themselves, so documentation and command-line choices come from the same declaration.

Why not msgspec: 0.23.0 has an aarch64 wheel but none for armv7l, so on 32-bit Raspberry
Pi OS it would be compiled on the Pi; and its messages name neither the file nor what was
expected in our words, so the checks would be ours anyway. Dataclasses are in the standard
library and cost nothing to import.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Collection


class ConfigError(Exception):
    """A config value is wrong; the message is the one line a person reads."""

    def __init__(self, where: str, key: str, problem: str):
        super().__init__(f"{where}: {key}: {problem}")
        self.where, self.key, self.problem = where, key, problem


def setting(default: Any, check: Check, help: str, *, env: bool | str = False, flag: bool | str = False,
            shown: str | None = None) -> Any:
    """A field of a config table. *env*: also ``LIVEDASH_<KEY>`` (or the name given); *flag*:
    also ``--<key>`` (or the flag given): name them where two tables share a key (``host``);
    *shown*: the default as the README says it, when the value alone would mislead ("the name")."""
    meta = {"check": check, "help": help, "env": env, "flag": flag, "shown": shown}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def settings(cls) -> list:
    """The declared settings of a table (fields made by ``setting``), in their order."""
    return [f for f in fields(cls) if "check" in f.metadata]


def default_of(f) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


def build(cls, raw: Any, where: str, table: str, extra: set[str] = frozenset()):
    """*raw* (a TOML table) checked into *cls*; keys in *extra* are someone else's and left alone."""
    if not isinstance(raw, dict):
        raise ConfigError(where, table, f"expected a table, got {raw!r}")
    declared = {f.name: f for f in settings(cls)}
    only_keys(raw, set(declared) | set(extra), where, table)
    return cls(**{k: declared[k].metadata["check"](v, where, f"{table}.{k}") for k, v in raw.items() if k in declared})


def only_keys(raw: dict[str, Any], known: set[str], where: str, table: str) -> None:
    for key in raw:
        if key not in known:
            prefix = f"{table}." if table else ""
            raise ConfigError(where, f"{prefix}{key}", f"unknown key (expected one of {', '.join(sorted(known))})")


# Checks: each is called with (value, where, key) and returns the value in its Python type.

class Check:
    def __call__(self, value: Any, where: str, key: str) -> Any:
        if not self.accepts(value):
            raise ConfigError(where, key, f"expected {self.expected}, got {value!r}")
        return self.convert(value)

    expected = "a value"

    def accepts(self, value: Any) -> bool:
        return True

    def convert(self, value: Any) -> Any:
        return value


class Text(Check):
    expected = "text"

    def accepts(self, value):
        return isinstance(value, str)


class Boolean(Check):
    expected = "true or false"

    def accepts(self, value):
        return isinstance(value, bool)


@dataclass(frozen=True)
class Choice(Check):
    choices: Collection[str]  # a live view (a dict's keys) is read each time

    @property
    def expected(self):
        return f"one of {', '.join(self.choices)}"

    def accepts(self, value):
        return value in self.choices


@dataclass(frozen=True)
class Whole(Check):
    low: int
    high: int

    @property
    def expected(self):
        return f"a whole number from {self.low} to {self.high}"

    def accepts(self, value):
        return not isinstance(value, bool) and isinstance(value, int) and self.low <= value <= self.high


class Pin(Whole):
    """A BCM GPIO number on a Raspberry Pi's header; two channels' pins must differ."""

    def __init__(self):
        super().__init__(0, 27)


@dataclass(frozen=True)
class Number(Check):
    low: float = -math.inf  # inclusive
    high: float = math.inf  # inclusive
    above: float | None = None  # exclusive

    @property
    def expected(self):
        bounds = [f"above {self.above}"] if self.above is not None else []
        bounds += [f"from {self.low}"] if self.low != -math.inf else []
        bounds += [f"up to {self.high}"] if self.high != math.inf else []
        return " ".join(["a number", *bounds])

    def accepts(self, value):
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and self.low <= value <= self.high and (self.above is None or value > self.above))

    def convert(self, value):
        return float(value)


class Pair(Check):
    expected = "two numbers like [0, 1]"

    def accepts(self, value):
        return isinstance(value, list) and len(value) == 2

    def __call__(self, value, where, key):
        super().__call__(value, where, key)
        return tuple(Number()(v, where, key) for v in value)


class Topic(Check):
    """An MQTT topic named in full: no wildcards (+ #), no empty level at either end; empty: none."""

    expected = "an MQTT topic like livedash/kitchen (no + or #)"

    def accepts(self, value):
        return (isinstance(value, str) and not any(c in value for c in "+#\0") and len(value.encode()) < 1024
                and not value.startswith("/") and not value.endswith("/"))


@dataclass(frozen=True)
class Pattern(Check):
    regex: str
    expected: str

    def accepts(self, value):
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None
