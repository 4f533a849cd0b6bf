"""The config: defaults, precedence, and one clear line for each mistake."""

import subprocess
import sys

import pytest

from app.config import ConfigError, load
from tests.support.server import REPO


def write(tmp_path, text, name="livedash.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_run_a_laptop_with_nothing_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./livedash.toml here
    config = load(environ={})
    assert (config.server.host, config.server.port, config.server.async_mode) == ("0.0.0.0", 5000, "eventlet")
    assert config.gpio.pin_factory == "auto" and config.server.history == 600
    [channel] = config.channels
    assert (channel.name, channel.source, channel.rate_hz) == ("random", "random", 1.0)
    assert (channel.options.min, channel.options.max, channel.decimals) == (0, 10, 3)


def test_the_file_in_the_working_directory_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[server]\nport = 8080\n")
    config = load(environ={})
    assert config.server.port == 8080 and config.path == "livedash.toml"


def test_precedence_file_then_environment_then_flags(tmp_path):
    path = write(tmp_path, '[server]\nhost = "127.0.0.1"\nport = 6000\nasync_mode = "threading"\n')
    assert load(path, environ={}).server.port == 6000
    env = {"LIVEDASH_PORT": "7000", "LIVEDASH_HOST": "::1"}
    config = load(path, environ=env)
    assert (config.server.port, config.server.host, config.server.async_mode) == (7000, "::1", "threading")
    config = load(path, environ=env, overrides={"server.port": "8000", "server.host": None})
    assert (config.server.port, config.server.host) == (8000, "::1")


def test_environment_names_the_config_file(tmp_path):
    path = write(tmp_path, "[server]\nport = 6001\n", "other.toml")
    assert load(environ={"LIVEDASH_CONFIG": path}).server.port == 6001


def test_channels_and_source_keys(tmp_path):
    path = write(tmp_path, """
[gpio]
pin_factory = "mock"
simulate = false

[[channels]]
name = "temp"
source = "adc"
adc_channel = 1
scale_from = [0.5, 1.5]
scale_to = [0, 100]
unit = "°C"
rate_hz = 2

[[channels]]
name = "range"
source = "distance"
echo_pin = 23
trigger_pin = 24
rate_hz = 50
""")
    config = load(path, environ={})
    temp, rng = config.channels
    assert temp.options.adc_channel == 1 and temp.scale_to == (0.0, 100.0) and temp.unit == "°C"
    assert rng.options.echo_pin == 23 and rng.unit == "cm" and rng.rate_hz == 50
    assert config.gpio.simulate is False


@pytest.mark.parametrize("text, key, expected", [
    ("[server]\nport = 70000\n", "server.port", "expected a whole number from 1 to 65535, got 70000"),
    ("[server]\nport = 'http'\n", "server.port", "expected a whole number from 1 to 65535, got 'http'"),
    ('[server]\nasync_mode = "gevent"\n', "server.async_mode", "expected one of eventlet, threading, got 'gevent'"),
    ("[server]\nprot = 1\n", "server.prot", "unknown key (expected one of"),
    ("[sever]\n", "sever", "unknown key (expected one of channels, gpio, mqtt, server)"),
    ('[gpio]\nsimulate = "yes"\n', "gpio.simulate", "expected true or false, got 'yes'"),
    ("channels = []\n", "channels", "expected at least one [[channels]] table"),
    ('[[channels]]\nname = "Bad Name"\nsource = "random"\n', "channels[0].name", "expected a name of lowercase"),
    ('[[channels]]\nname = "a"\nsource = "thermocouple"\n', "channels[a].source", "expected one of random, distance, light, adc"),
    ('[[channels]]\nname = "a"\nsource = "random"\nrate_hz = 0\n', "channels[a].rate_hz", "expected a number above 0.0 up to 200.0, got 0"),
    ('[[channels]]\nname = "a"\nsource = "random"\nrate_hz = 1000\n', "channels[a].rate_hz", "got 1000"),
    ('[[channels]]\nname = "a"\nsource = "random"\nmin = 5\nmax = 1\n', "channels[a].max", "expected more than min (5.0)"),
    ('[[channels]]\nname = "a"\nsource = "adc"\nvalid_min = 5\nvalid_max = 1\n', "channels[a].valid_max",
     "expected more than valid_min"),
    ('[[channels]]\nname = "a"\nsource = "random"\necho_pin = 3\n', "channels[a].echo_pin", "unknown key"),
    ('[[channels]]\nname = "a"\nsource = "light"\npin = 40\n', "channels[a].pin", "expected a whole number from 0 to 27, got 40"),
    ('[[channels]]\nname = "a"\nsource = "adc"\nscale_from = [0, 1]\n', "channels[a].scale_from", "scale_from and scale_to go together"),
    ('[[channels]]\nname = "a"\nsource = "adc"\nscale_from = [1]\nscale_to = [0, 1]\n', "channels[a].scale_from", "expected two numbers"),
    ('[[channels]]\nname = "a"\nsource = "random"\n[[channels]]\nname = "a"\nsource = "random"\n', "channels[a].name", "used by two channels"),
    ('[[channels]]\nname = "a"\nsource = "light"\npin = 17\n[[channels]]\nname = "b"\nsource = "distance"\n',
     "channels[b].echo_pin", "pin 17 is already used by channel a"),
])
def test_each_mistake_names_the_file_the_key_and_what_was_expected(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path, environ={})
    assert e.value.where == path and e.value.key == key
    assert expected in e.value.problem
    assert str(e.value).startswith(f"{path}: {key}: ")


def test_environment_and_flag_mistakes_name_their_source(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"^environment variable LIVEDASH_PORT: server.port: expected a whole number"):
        load(path, environ={"LIVEDASH_PORT": "eighty"})
    with pytest.raises(ConfigError, match=r"^environment variable LIVEDASH_PROT: LIVEDASH_PROT: unknown"):
        load(path, environ={"LIVEDASH_PROT": "80"})
    with pytest.raises(ConfigError, match=r"^command line --port: server.port: expected"):
        load(path, environ={}, overrides={"server.port": "0"})


def test_broken_or_missing_files(tmp_path):
    path = write(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError, match=r": file: is not valid TOML"):
        load(path, environ={})
    with pytest.raises(ConfigError, match=r"nowhere.toml: file: not found"):
        load(str(tmp_path / "nowhere.toml"), environ={})


def test_bad_config_stops_start_up_with_one_line(tmp_path):
    path = write(tmp_path, '[server]\nport = "eighty"\n')
    result = subprocess.run([sys.executable, "-m", "app", "--config", path], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"livedash: config error: {path}: server.port: expected a whole number from 1 to 65535, got 'eighty'"]
    ok = subprocess.run([sys.executable, "-m", "app", "--config", write(tmp_path, ""), "--check-config"],
                        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "config ok" in ok.stdout


def test_the_readme_tables_are_the_declaration():
    """Every setting is declared once (app/config.py, app/sensors/); the README shows that declaration."""
    from app.configdoc import readme_copy, tables

    readme = (REPO / "README.md").read_text()
    assert readme_copy(readme) == tables(), "README's config tables are stale: ./scripts/run --print-config-table"
    result = subprocess.run([sys.executable, "-m", "app", "--print-config-table"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == tables()


def test_environment_variables_and_flags_come_from_the_declaration(tmp_path):
    from app.__main__ import parse_args
    from app.config import ENVIRONMENT, FLAGS

    assert sorted(ENVIRONMENT) == ["LIVEDASH_ASYNC_MODE", "LIVEDASH_HISTORY", "LIVEDASH_HOST", "LIVEDASH_LOG_LEVEL",
                                   "LIVEDASH_PIN_FACTORY", "LIVEDASH_PORT", "LIVEDASH_SIMULATE", "LIVEDASH_STATE_DIR"]
    assert sorted(FLAGS) == ["--async-mode", "--host", "--log-level", "--pin-factory", "--port", "--state-dir"]
    args = parse_args(["--port", "8081", "--pin-factory", "mock"])
    assert (getattr(args, "server.port"), getattr(args, "gpio.pin_factory"), getattr(args, "server.host")) == \
        ("8081", "mock", None)
    config = load(write(tmp_path, ""), environ={"LIVEDASH_SIMULATE": "false", "LIVEDASH_HISTORY": "50"})
    assert config.gpio.simulate is False and config.server.history == 50


def test_two_settings_of_one_environment_name_are_refused_when_declared():
    from app.config import _named

    with pytest.raises(ValueError, match="LIVEDASH_HOST is declared for both server.host and"):
        _named("env", lambda key: "LIVEDASH_HOST")
