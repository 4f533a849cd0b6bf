"""Levels: is a channel's value ok, in warning or in alarm, with hysteresis.

A channel may set ``warn_above``, ``warn_below``, ``alarm_above``, ``alarm_below`` and
``hysteresis`` (in its own unit). A value beyond a limit raises the level at once; the level
falls back only once the value is back inside the limit by the hysteresis, so a value that
hovers at a limit gives one crossing, not one per sample.

Only readings have a level. A sensor fault (a read that failed, or a reading outside
``valid_min``/``valid_max``) is a status, not a level: the tracker never sees it, and the
level it held stands until the next reading.

Pure: no clock, no I/O; the hub feeds it values and emits what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("ok", "warn", "alarm")  # in rising order
LIMIT_KEYS = ("warn_above", "warn_below", "alarm_above", "alarm_below")


@dataclass(frozen=True)
class Limits:
    warn_above: float | None = None
    warn_below: float | None = None
    alarm_above: float | None = None
    alarm_below: float | None = None
    hysteresis: float = 0.0

    @property
    def any(self) -> bool:
        return any(getattr(self, k) is not None for k in LIMIT_KEYS)

    def as_dict(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in (*LIMIT_KEYS, "hysteresis")}

    def problem(self) -> tuple[str, str] | None:
        """(key, what is wrong) if the limits contradict each other, else None."""
        order = [("alarm_below", self.alarm_below), ("warn_below", self.warn_below),
                 ("warn_above", self.warn_above), ("alarm_above", self.alarm_above)]
        set_ = [(k, v) for k, v in order if v is not None]
        for (low_key, low), (high_key, high) in zip(set_, set_[1:]):
            if low >= high:
                return high_key, f"expected more than {low_key} ({low:g})"
        if self.hysteresis < 0:
            return "hysteresis", "expected 0 or more"
        return None

    def level(self, value: float, inset: float = 0.0) -> tuple[str, float | None]:
        """The level of *value* against the limits moved *inset* inwards, and the limit it is beyond."""
        for name, above, below in (("alarm", self.alarm_above, self.alarm_below),
                                   ("warn", self.warn_above, self.warn_below)):
            if above is not None and value > above - inset:
                return name, above
            if below is not None and value < below + inset:
                return name, below
        return "ok", None


@dataclass(frozen=True)
class Crossing:
    level: str
    value: float
    limit: float | None  # the limit now exceeded; for "ok", the one the value came back inside


class Tracker:
    """One channel's level, fed its readings in order."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.level = "ok"
        self.limit: float | None = None  # the limit the current level is beyond

    def update(self, value: float) -> Crossing | None:
        """The crossing this reading makes, or None if the level stays."""
        level, limit = self.limits.level(value)
        rank = LEVELS.index
        if rank(level) < rank(self.level):  # falling: only once inside by the hysteresis
            held, held_limit = self.limits.level(value, self.limits.hysteresis)
            if rank(held) > rank(level):
                level, limit = (held, held_limit) if rank(held) < rank(self.level) else (self.level, self.limit)
        if level == self.level:
            return None
        left = self.limit
        self.level, self.limit = level, limit
        return Crossing(level, value, limit if level != "ok" else left)
