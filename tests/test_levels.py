"""Levels: limits with hysteresis, one crossing per crossing, and a fault is not a level."""

import pytest

from app.config import ConfigError, load
from app.levels import Limits, Tracker

LIMITS = Limits(warn_above=40, alarm_above=50, warn_below=10, alarm_below=0, hysteresis=2)


def run(values, limits=LIMITS):
    tracker = Tracker(limits)
    return [(c.level, c.value, c.limit) for v in values if (c := tracker.update(v))]


def test_rising_crosses_at_once_and_falling_only_past_the_hysteresis():
    assert run([30, 41, 45, 51, 49, 48.5, 47.9, 39, 38.1, 37.9]) == [
        ("warn", 41, 40), ("alarm", 51, 50), ("warn", 47.9, 40), ("ok", 37.9, 40)]


def test_a_value_hovering_at_a_limit_is_one_crossing():
    assert run([50.5, 49.5, 50.5, 49.5, 50.5, 49.1]) == [("alarm", 50.5, 50)]


def test_alarm_straight_back_to_ok_and_the_low_side():
    assert run([55, 20, 5, -1, 1.9, 2.1, 12.5]) == [
        ("alarm", 55, 50), ("ok", 20, 50), ("warn", 5, 10), ("alarm", -1, 0), ("warn", 2.1, 10), ("ok", 12.5, 10)]


@pytest.mark.parametrize("key", ["warn_above", "warn_below", "alarm_above", "alarm_below"])
def test_a_limit_is_exceeded_only_beyond_it(key):
    assert run([5, 5.0], Limits(**{key: 5})) == []
    assert run([5.001 if key.endswith("above") else 4.999], Limits(**{key: 5}))[0][0] == key.split("_")[0]


def test_no_limits_always_ok():
    tracker = Tracker(Limits())
    assert [tracker.update(v) for v in (-1e9, 0, 1e9)] == [None, None, None]
    assert tracker.level == "ok" and not Limits().any


def config(tmp_path, extra):
    path = tmp_path / "c.toml"
    path.write_text(f'[[channels]]\nname = "temp"\nsource = "random"\n{extra}\n')
    return load(str(path), environ={})


def test_limits_come_from_the_channel_table(tmp_path):
    c = config(tmp_path, "warn_above = 7\nalarm_above = 9\nhysteresis = 0.5").channels[0]
    assert c.limits == Limits(warn_above=7, alarm_above=9, hysteresis=0.5)


@pytest.mark.parametrize("extra, key, problem", [
    ("warn_above = 9\nalarm_above = 7", "alarm_above", "expected more than warn_above (9)"),
    ("alarm_below = 5\nwarn_below = 5", "warn_below", "expected more than alarm_below (5)"),
    ("warn_below = 8\nwarn_above = 2", "warn_above", "expected more than warn_below (8)"),
    ("hysteresis = -1", "hysteresis", "expected a number from 0"),
    ("alarm_above = 'hot'", "alarm_above", "expected a number"),
])
def test_contradicting_limits_name_the_key(tmp_path, extra, key, problem):
    with pytest.raises(ConfigError) as e:
        config(tmp_path, extra)
    assert e.value.key == f"channels[temp].{key}" and problem in e.value.problem


def test_limits_as_ansible_channel_keys_reach_the_config(tmp_path):
    """host_vars/example-pi.yml's channels, through the role's template, give the limits the app checks."""
    import json

    import jinja2
    import yaml

    from tests.support.server import REPO

    role = REPO / "provisioning" / "roles" / "livedash"
    variables = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    variables.update(yaml.safe_load((REPO / "provisioning" / "host_vars" / "example-pi.yml").read_text()))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(role / "templates"), keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    path = tmp_path / "livedash.toml"
    path.write_text(env.get_template("livedash.toml.j2").render(ansible_managed="test", **variables))
    temperature = next(c for c in load(str(path), environ={}).channels if c.name == "temperature")
    assert temperature.limits == Limits(warn_above=28, warn_below=15, alarm_above=32, hysteresis=0.5)
