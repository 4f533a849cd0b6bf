"""Random TOML and environment values: the loader gives a valid config or one clear error, never a traceback."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import ENVIRONMENT, ConfigError, load

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["random", "distance", "light", "adc", "mock", "eventlet", "a", "0.0.0.0"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)
keys = st.sampled_from(["name", "source", "rate_hz", "min", "max", "decimals", "unit", "pin", "echo_pin",
                        "scale_from", "scale_to", "host", "port", "async_mode", "history", "pin_factory",
                        "simulate", "label", "display_min", "timeout_s", "adc_channel", "bogus"])
tables = st.dictionaries(keys, values, max_size=6)
documents = st.fixed_dictionaries({}, optional={
    "server": tables, "gpio": tables, "channels": st.one_of(st.lists(tables, max_size=3), values)})


def toml_value(v):
    if v is None:
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, str):
        return '"' + v.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f'"{k}" = {toml_value(x)}' for k, x in v.items()) + "}"


def to_toml(doc):
    lines = []
    for table in ("server", "gpio"):
        if table in doc:
            lines.append(f"[{table}]")
            lines += [f'"{k}" = {toml_value(v)}' for k, v in doc[table].items()]
    if "channels" in doc:
        if isinstance(doc["channels"], list) and all(isinstance(c, dict) for c in doc["channels"]):
            for channel in doc["channels"]:
                lines.append("[[channels]]")
                lines += [f'"{k}" = {toml_value(v)}' for k, v in channel.items()]
        else:
            lines.insert(0, f"channels = {toml_value(doc['channels'])}")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_random_toml_gives_a_config_or_one_clear_error(tmp_path, doc):
    path = tmp_path / "livedash.toml"
    path.write_text(to_toml(doc))
    try:
        load(str(path), environ={})
    except ConfigError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(env=st.dictionaries(st.sampled_from(sorted(ENVIRONMENT) + ["LIVEDASH_NOPE"]),
                           st.text(alphabet=string.printable, max_size=10), max_size=4),
       raw=st.text(max_size=40))
def test_random_environment_and_bytes_give_a_config_or_one_clear_error(tmp_path, env, raw):
    path = tmp_path / "livedash.toml"
    path.write_text(raw)
    try:
        load(str(path), environ=env)
    except ConfigError as e:
        assert "\n" not in str(e)
