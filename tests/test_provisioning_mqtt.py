"""The mosquitto role and a central Pi's MQTT settings, by the real playbook on a real booted Debian 12.

One guest plays the Pi that runs the fleet's broker, publishes its own channel and shows a
remote Pi's channel (livedash_remote_channels). The other Pi and Home Assistant are played
from the LAN viewer namespace with Debian's mosquitto clients, as they would be on the LAN.
No kiosk here: tests/test_provisioning.py covers it.
"""

import json
import subprocess
import time

import pytest

from tests.support.guest import LITE_PACKAGES, Guest
from tests.support.playbook import recap, run as provision
from tests.support.server import REPO, wait_until

USERS = [{"name": "hub", "password": "hub-pw"}, {"name": "garage", "password": "garage-pw"},
         {"name": "homeassistant", "password": "ha-pw"}]
VARIABLES = {
    "base_hostname": "hub",
    "livedash_kiosk": "false",
    "livedash_mosquitto": "true",
    "mosquitto_users": USERS,
    "livedash_mqtt": {"host": "127.0.0.1", "username": "hub", "password": "hub-pw"},
    "livedash_remote_channels": [{"from": "garage", "channel": "distance", "label": "Garage door", "unit": "cm",
                                  "rate_hz": 1}],
}


def playbook(guest, *args, **overrides):
    return provision(guest, *args, timeout=900, **{**VARIABLES, **overrides})


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mqtt-guest")
    # The guest has no network but its LAN: mosquitto comes in its root file system, as the
    # kiosk's packages do (the role's apt task then finds it installed).
    with Guest(workdir, packages=LITE_PACKAGES + ["mosquitto"]).prepare(REPO / "requirements.txt").boot() as guest:
        started = time.monotonic()
        first = playbook(guest)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        print(f"\nfirst playbook run with the mosquitto role {time.monotonic() - started:.1f} s")
        yield guest


def lan(guest, *cmd, timeout=30):
    return guest.viewer_run(list(cmd), check=False, timeout=timeout)


def health(guest):
    out = lan(guest, "python3", "-c", f"import urllib.request as u; print(u.urlopen('http://{guest.address}/healthz', timeout=5).read().decode())")
    return json.loads(out.stdout)


def test_the_broker_refuses_anonymous_clients_on_the_lan(hub):
    refused = lan(hub, "mosquitto_sub", "-h", hub.address, "-t", "#", "-C", "1", "-W", "5")
    assert refused.returncode != 0 and "not authori" in (refused.stdout + refused.stderr).lower(), refused


def journal(guest):
    return guest.run(["journalctl", "--no-pager", "-n", "60", "-u", "livedash", "-u", "mosquitto"], check=False).stdout


def test_the_pi_publishes_to_its_own_broker_and_home_assistant_finds_it(hub):
    try:
        wait_until(lambda: health(hub).get("mqtt", {}).get("state") == "connected", timeout=60, what="connected")
    except TimeoutError:
        raise AssertionError(f"{health(hub).get('mqtt')}\n{journal(hub)}") from None
    sample = lan(hub, "mosquitto_sub", "-h", hub.address, "-u", "homeassistant", "-P", "ha-pw",
                 "-t", "livedash/hub/random", "-C", "2", "-W", "20")
    assert sample.returncode == 0, sample
    assert set(json.loads(sample.stdout.splitlines()[-1])) == {"seq", "t", "value", "unit"}
    entry = lan(hub, "mosquitto_sub", "-h", hub.address, "-u", "homeassistant", "-P", "ha-pw",
                "-t", "homeassistant/sensor/livedash_hub/random/config", "-C", "1", "-W", "10")
    assert json.loads(entry.stdout)["state_topic"] == "livedash/hub/random"
    listing = hub.run(["stat", "-c", "%a %U %G", "/etc/livedash/mqtt-password", "/etc/mosquitto/livedash.passwd"])
    assert listing.stdout.split("\n")[:2] == ["640 root livedash", "640 root mosquitto"]
    assert "hub-pw" not in hub.run(["cat", "/etc/livedash/livedash.toml"]).stdout


def test_a_remote_pis_channel_is_shown_and_its_death_is_its_fault(hub):
    def publish(topic, payload):
        result = lan(hub, "mosquitto_pub", "-h", hub.address, "-u", "garage", "-P", "garage-pw", "-r", "-q", "1",
                     "-t", topic, "-m", payload)
        assert result.returncode == 0, result

    publish("livedash/garage/availability", "online")
    publish("livedash/garage/distance", json.dumps({"seq": 7, "t": time.time() * 1000, "value": 42.5, "unit": "cm"}))
    wait_until(lambda: health(hub)["channels"]["garage-distance"]["status"] == "ok", timeout=30, what="garage ok")
    publish("livedash/garage/availability", "offline")  # what the broker says when the garage Pi dies
    wait_until(lambda: health(hub)["channels"]["garage-distance"]["status"] == "fault", what="garage in fault")
    assert health(hub)["channels"]["garage-distance"]["reason"] == "publisher offline (livedash/garage/availability)"
    assert health(hub)["channels"]["random"]["status"] == "ok"


def test_a_second_run_and_check_mode_change_nothing(hub):
    second = playbook(hub)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)["changed"] == "0", second.stdout[-3000:]
    check = playbook(hub, "--check", "--diff")
    assert check.returncode == 0 and recap(check.stdout)["changed"] == "0", check.stdout[-3000:]


def test_no_users_is_refused_before_anything_changes(hub):
    refused = playbook(hub, mosquitto_users=[])
    assert refused.returncode != 0 and "mosquitto_users must list at least one" in refused.stdout
    assert recap(refused.stdout)["changed"] == "0"
