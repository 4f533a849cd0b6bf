"""MQTT, Home Assistant discovery and /metrics against a real Mosquitto (Debian's) and real livedash processes.

Every broker here is the test's own: loopback, a free port, a password file, no anonymous
clients, no persistence (tests/support/broker.py). Nothing waits a fixed time and then
counts: each step waits for its condition with a deadline.
"""

import json
import shutil
import signal
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.config import ConfigError, load
from tests.support.broker import Broker, Watcher, certificates, retained
from tests.support.server import REPO, Recorder, ServerProcess, wait_until

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

USERS = {"pi": "pi-secret", "central": "central-secret", "viewer": "viewer-secret"}


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path, USERS) as b:
        yield b


def mqtt_table(broker, tmp_path, user="pi", prefix="livedash/pi-a", password=None, extra=""):
    password_file = tmp_path / f"{user}-password"
    password_file.write_text((password or USERS[user]) + "\n")
    return f"""
[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "{user}"
password_file = "{password_file}"
topic_prefix = "{prefix}"
{extra}
"""


DISTANCE = """
[[channels]]
name = "distance"
label = "Distance"
source = "random"
unit = "cm"
decimals = 1
rate_hz = 5
"""
HUMIDITY = """
[[channels]]
name = "humidity"
source = "random"
unit = "%"
rate_hz = 5
"""
FAST = """
[[channels]]
name = "fast"
source = "random"
rate_hz = 50
"""
PUBLISHER_CHANNELS = DISTANCE + HUMIDITY + FAST


def metrics(server) -> dict:
    """/metrics read with prometheus_client's own parser: {(name, labels): value}."""
    text = urllib.request.urlopen(server.url + "/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def seqs(watcher, topic):
    return [m["seq"] for m in watcher.json_on(topic)]


def test_publisher_topics_discovery_metrics_and_a_removed_channel(broker, tmp_path):
    always_warn = HUMIDITY.replace("rate_hz = 5", "rate_hz = 5\nmin = 80\nmax = 90\nwarn_above = 70")
    config = mqtt_table(broker, tmp_path, extra="max_rate_hz = 10") + DISTANCE + always_warn + FAST
    with Watcher(broker, "viewer", "livedash/#") as watcher:
        server = ServerProcess(tmp_path, config).start()
        try:
            wait_until(lambda: len(seqs(watcher, "livedash/pi-a/distance")) >= 5, what="distance samples")
            wait_until(lambda: len(seqs(watcher, "livedash/pi-a/fast")) >= 10, what="fast samples")
            sample = watcher.json_on("livedash/pi-a/distance")[0]
            assert set(sample) == {"seq", "t", "value", "unit"} and sample["unit"] == "cm"
            distance = seqs(watcher, "livedash/pi-a/distance")
            assert distance == list(range(distance[0], distance[0] + len(distance))), "every sample up to 10 Hz"
            # 50 Hz against max_rate_hz 10: the latest at 10 Hz, by the samples' own times.
            fast = watcher.json_on("livedash/pi-a/fast")
            span_ms = fast[-1]["t"] - fast[0]["t"]
            assert len(fast) - 1 <= span_ms / 100 + 1e-6 and fast[-1]["seq"] - fast[0]["seq"] > len(fast)
            assert watcher.last("livedash/pi-a/availability") == b"online"

            held = retained(broker, "viewer", "#")
            assert held["livedash/pi-a/availability"] == b"online"
            assert json.loads(held["livedash/pi-a/distance/status"]) == {"status": "ok", "reason": None}
            assert json.loads(held["livedash/pi-a/distance"])["unit"] == "cm"  # the last value, retained
            entry = json.loads(held["homeassistant/sensor/livedash_pi-a/distance/config"])
            # What Home Assistant needs for a sensor of a device, and what makes it a good one.
            assert entry["state_topic"] == "livedash/pi-a/distance"
            assert entry["unique_id"] == "livedash_pi-a_distance" and entry["name"] == "Distance"
            assert entry["unit_of_measurement"] == "cm" and entry["device_class"] == "distance"
            assert entry["state_class"] == "measurement" and entry["value_template"] == "{{ value_json.value }}"
            assert entry["device"]["identifiers"] == ["livedash_pi-a"] and entry["device"]["name"] == "pi-a"
            assert {"topic": "livedash/pi-a/availability"} in entry["availability"]
            assert entry["availability_mode"] == "all"
            humidity = json.loads(held["homeassistant/sensor/livedash_pi-a/humidity/config"])
            assert humidity["unit_of_measurement"] == "%" and "device_class" not in humidity  # % fits no class alone

            m = metrics(server)
            assert m[("livedash_mqtt_state", (("state", "connected"),))] == 1
            assert m[("livedash_mqtt_published_total", ())] >= 15
            assert m[("livedash_mqtt_dropped_total", ())] == 0
            assert m[("livedash_channel_samples_total", (("channel", "distance"),))] >= 5
            assert m[("livedash_channel_status", (("channel", "distance"), ("status", "ok")))] == 1
            assert ("livedash_channel_value", (("channel", "distance"), ("unit", "cm"))) in m
            assert m[("livedash_channel_level", (("channel", "humidity"), ("level", "warn")))] == 1
            assert m[("livedash_channel_level", (("channel", "humidity"), ("level", "ok")))] == 0
            assert not any(k[0] == "livedash_channel_level" and ("channel", "distance") in k[1] for k in m), \
                "a channel without limits has no level"
            assert m[("livedash_broadcast_backlog_bytes", ())] == 0 and m[("livedash_clients_behind", ())] == 0
            assert m[("livedash_clients", ())] == 0 and m[("livedash_send_backlog", ())] == 0
            assert m[("process_resident_memory_bytes", ())] > 10e6
        finally:
            server.stop()
        # A clean stop says offline itself (the will is only for a death).
        wait_until(lambda: watcher.last("livedash/pi-a/availability") == b"offline", what="offline")

        # The same Pi without its humidity channel: Home Assistant's entry and its topics are cleared.
        without_humidity = mqtt_table(broker, tmp_path, extra="max_rate_hz = 10") + DISTANCE + FAST
        server = ServerProcess(tmp_path, without_humidity).start()
        try:
            wait_until(lambda: "homeassistant/sensor/livedash_pi-a/humidity/config"
                       not in retained(broker, "viewer", "#"), what="the removed channel's entry cleared")
            held = retained(broker, "viewer", "#")
            assert "livedash/pi-a/humidity" not in held and "livedash/pi-a/humidity/status" not in held
            assert "homeassistant/sensor/livedash_pi-a/distance/config" in held
        finally:
            server.stop()


def test_anonymous_clients_are_refused_and_wrong_credentials_are_one_log_line(broker, tmp_path):
    anonymous = Watcher(broker, None, "#").connect()
    try:
        assert anonymous.connack.is_failure and "authori" in str(anonymous.connack).lower()
    finally:
        anonymous.close()

    config = mqtt_table(broker, tmp_path, password="wrong") + PUBLISHER_CHANNELS
    with ServerProcess(tmp_path, config) as server:
        wait_until(lambda: "not authorised" in server.health()["mqtt"]["reason"].lower()
                   or "not authorized" in server.health()["mqtt"]["reason"].lower(), what="the refusal")
        health = server.health()
        assert health["status"] == "degraded" and health["mqtt"]["state"] == "disconnected"
        assert "password_file" in health["mqtt"]["summary"]
        # The sensors go on regardless (under load the refusal can come before the first sample).
        wait_until(lambda: server.health()["channels"]["distance"]["status"] == "ok", what="the distance channel ok")
        # paho tries again with its backoff; the log says it once.
        wait_until(lambda: server.health()["mqtt"]["attempts"] >= 3, timeout=30, what="three refused attempts")
        assert server.output().count("refused the connection") == 1, server.output()


def test_broker_down_at_start_then_restarted_mid_stream(tmp_path):
    broker = Broker(tmp_path, USERS)  # not started yet
    config = mqtt_table(broker, tmp_path, extra="queue_size = 20\nqos = 1\nmax_rate_hz = 20") + """
[[channels]]
name = "level"
source = "random"
rate_hz = 20
"""
    with ServerProcess(tmp_path, config) as server:
        health = server.health()  # serving, with the broker down
        assert health["mqtt"]["state"] in ("connecting", "disconnected")
        wait_until(lambda: "Connection refused" in (server.health()["mqtt"]["reason"] or ""), what="the reason")
        assert server.health()["mqtt"]["summary"].startswith("mqtt: disconnected: cannot reach 127.0.0.1:")
        broker.start()
        try:
            with Watcher(broker, "viewer", "livedash/pi-a/level") as watcher:
                wait_until(lambda: server.health()["mqtt"]["state"] == "connected", timeout=70, what="connected")
                wait_until(lambda: len(seqs(watcher, "livedash/pi-a/level")) >= 10, what="samples")
                broker.stop()
                wait_until(lambda: server.health()["mqtt"]["state"] == "disconnected", what="the loss noticed")
                wait_until(lambda: server.health()["mqtt"]["dropped"] > 0, what="drops from the full queue")
                before = max(seqs(watcher, "livedash/pi-a/level"))
            broker.start()
            with Watcher(broker, "viewer", "livedash/pi-a/level") as watcher:
                wait_until(lambda: server.health()["mqtt"]["state"] == "connected", timeout=70, what="reconnected")
                wait_until(lambda: len(seqs(watcher, "livedash/pi-a/level")) >= 30, what="samples again")
                health = server.health()
                got = sorted(set(seqs(watcher, "livedash/pi-a/level")))
            after = [s for s in got if s > before]
            missing = set(range(before + 1, after[-1])) - set(after)
            # qos 1: nothing is lost on the way, so every sample missing is one the queue dropped and counted.
            assert 0 < len(missing) <= health["mqtt"]["dropped"], (sorted(missing), before, after, health["mqtt"])
            assert health["mqtt"]["connects"] == 2 and health["status"] == "ok"
            m = metrics(server)
            assert m[("livedash_mqtt_dropped_total", ())] >= health["mqtt"]["dropped"]
            assert m[("livedash_mqtt_connects_total", ())] == 2
            broker.stop()  # gone again, for good: a stop with a full queue must not wait for it
            wait_until(lambda: server.health()["mqtt"]["dropped"] > health["mqtt"]["dropped"], what="full again")
        finally:
            broker.stop()
        assert server.stop() == 0


def test_tls_with_the_brokers_ca_and_a_clear_reason_with_another(tmp_path):
    pem = certificates(tmp_path)
    with Broker(tmp_path, USERS, tls=pem) as broker:
        for ca, ok in (("ca", True), ("other-ca", False)):
            workdir = tmp_path / ca
            workdir.mkdir()
            config = mqtt_table(broker, workdir, extra=f'tls = true\nca_file = "{pem[ca]}"') + DISTANCE
            with ServerProcess(workdir, config) as server:
                if ok:
                    wait_until(lambda: server.health()["mqtt"]["published"] >= 3, what="published over TLS")
                else:
                    wait_until(lambda: "certificate verify failed" in (server.health()["mqtt"]["reason"] or ""),
                               what="the certificate refused, and why")
                    wait_until(lambda: server.health()["channels"]["distance"]["status"] == "ok",
                               what="the distance channel ok beside the refused broker")


CENTRAL_BAD_PAYLOADS = """
[[channels]]
name = "bare"
source = "mqtt"
topic = "sensors/bare"
rate_hz = 2

[[channels]]
name = "tasmota"
source = "mqtt"
topic = "tele/tasmota/SENSOR"
json_key = "AM2301.Temperature"
unit = "°C"
valid_max = 125
rate_hz = 2

[[channels]]
name = "other"
source = "mqtt"
topic = "sensors/other"
rate_hz = 2
"""


@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_bad_payloads_are_a_fault_of_that_channel_only(broker, tmp_path, mode):
    config = mqtt_table(broker, tmp_path, user="central", prefix="livedash/central") + CENTRAL_BAD_PAYLOADS
    with ServerProcess(tmp_path, config, args=("--async-mode", mode)) as server, Watcher(broker, "pi") as device, \
            Recorder(server.url) as page:
        wait_until(lambda: server.health()["mqtt"]["state"] == "connected", what="connected")

        def status(name):
            return server.health()["channels"][name]

        def values(name):
            return [s["value"] for s in page.samples(name)]

        device.publish("sensors/bare", "21.5")
        device.publish("tele/tasmota/SENSOR", json.dumps({"AM2301": {"Temperature": 19.25, "Humidity": 40}}))
        device.publish("sensors/other", "1")
        wait_until(lambda: values("bare") == [21.5] and values("tasmota") == [19.25] and values("other") == [1.0],
                   what="the first values")

        bad = [("sensors/bare", b"abc", "bare", "expected a number, got 'abc'"),
               ("sensors/bare", b"\xff\xfe", "bare", "not UTF-8 text"),
               ("tele/tasmota/SENSOR", b'{"AM2301": {"Humidity": 40}}', "tasmota", "no 'AM2301.Temperature'"),
               ("tele/tasmota/SENSOR", b"{nope", "tasmota", "expected JSON"),
               ("tele/tasmota/SENSOR", b'{"AM2301": {"Temperature": 300}}', "tasmota", "outside ..125")]
        for i, (topic, payload, name, reason) in enumerate(bad):
            device.publish(topic, payload)
            wait_until(lambda: status(name)["status"] == "fault" and reason in (status(name)["reason"] or ""),
                       what=f"{name} in fault for {payload!r}")
            assert status(name)["reason"].startswith(f"bad payload on {topic}: ")
            device.publish("sensors/other", str(10 + i))  # the others are not held up
            wait_until(lambda: values("other")[-1] == 10 + i, what="the other channel's next value")
            assert status("other")["status"] == "ok"
        device.publish("sensors/bare", "22")
        wait_until(lambda: status("bare")["status"] == "ok" and values("bare")[-1] == 22.0, what="bare back")
        assert server.health()["mqtt"]["refused_payloads"] == len(bad)
        assert [s["status"] for s in page.of("status") if s["channel"] == "other"] == ["ok"]
        assert server.process.poll() is None


def test_config_refuses_what_cannot_work(tmp_path):
    def check(text):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as e:
            load(str(path), environ={})
        return str(e.value)

    assert "channels[x].source: mqtt needs a broker" in check('[[channels]]\nname = "x"\nsource = "mqtt"\ntopic = "a"\n')
    assert "channels[x].topic: expected the topic" in check('[mqtt]\nhost = "b"\n[[channels]]\nname = "x"\nsource = "mqtt"\n')
    assert "no + or #" in check('[mqtt]\nhost = "b"\n[[channels]]\nname = "x"\nsource = "mqtt"\ntopic = "a/#"\n')
    assert "mqtt.password_file: cannot read" in check('[mqtt]\nhost = "b"\nusername = "u"\npassword_file = "/nope"\n')
    assert "mqtt.qos: expected a whole number from 0 to 1" in check('[mqtt]\nhost = "b"\nqos = 2\n')
    assert "mqtt.retain: unknown key" in check('[mqtt]\nretain = true\n')
    (tmp_path / "plain.toml").write_text("[server]\n")
    assert load(str(tmp_path / "plain.toml"), environ={}).mqtt.enabled is False  # off by default


def central_channel(pi, channel, label, unit):
    return f"""
[[channels]]
name = "{pi}-{channel}"
label = "{label}"
source = "mqtt"
topic = "livedash/{pi}/{channel}"
json_key = "value"
availability_topic = "livedash/{pi}/availability"
status_topic = "livedash/{pi}/{channel}/status"
unit = "{unit}"
decimals = 1
rate_hz = 5
"""


def test_a_central_page_shows_two_pis_live_and_one_killed_as_its_fault(broker, tmp_path):
    from playwright.sync_api import sync_playwright

    pis = {}
    for pi, channel in (("pi-a", DISTANCE), ("pi-b", HUMIDITY.replace("rate_hz = 5", "rate_hz = 5\nmin = 40\nmax = 60"))):
        (tmp_path / pi).mkdir()
        pis[pi] = ServerProcess(tmp_path / pi, mqtt_table(broker, tmp_path, prefix=f"livedash/{pi}") + channel)
    (tmp_path / "central").mkdir()
    central = ServerProcess(tmp_path / "central", mqtt_table(broker, tmp_path, user="central", prefix="livedash/central")
                            + central_channel("pi-a", "distance", "pi-a · Distance", "cm")
                            + central_channel("pi-b", "humidity", "pi-b · Humidity", "%"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-quic", "--no-sandbox"])
        try:
            for server in (*pis.values(), central):
                server.start()
            page = browser.new_page(viewport={"width": 1280, "height": 600})
            page.goto(central.url + "/")

            def seqs_on_page(name):
                return page.evaluate(f"(window.livedash.channels.get('{name}') || {{samples: []}}).samples.length")

            def card(name):
                return page.locator(f"[data-channel={name}]")

            wait_until(lambda: seqs_on_page("pi-a-distance") >= 10 and seqs_on_page("pi-b-humidity") >= 10,
                       timeout=20, what="both Pis' samples on the central page")
            assert page.locator("#links").inner_text() == "mqtt: connected"
            assert card("pi-a-distance").locator(".unit").inner_text() == "cm"
            wait_until(lambda: seqs_on_page("pi-a-distance") >= 25, what="a chart's worth")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "central-two-pis.png"))  # the README's picture (docs/)

            pis["pi-a"].stop(signal.SIGKILL)  # no goodbye: the broker sends its last will
            wait_until(lambda: card("pi-a-distance").get_attribute("data-status") == "fault", what="pi-a's fault")
            assert "publisher offline (livedash/pi-a/availability)" in card("pi-a-distance").locator(".fault-reason").inner_text()
            n = seqs_on_page("pi-b-humidity")
            wait_until(lambda: seqs_on_page("pi-b-humidity") >= n + 5, what="pi-b still live")
            assert card("pi-b-humidity").get_attribute("data-status") == "ok"
            page.screenshot(path=str(ARTIFACTS / "central-one-pi-down.png"))

            broker.stop()  # and the central's own broker gone: said in the header and on each card
            wait_until(lambda: page.locator("#links").inner_text().startswith("mqtt: disconnected"),
                       what="the header")
            wait_until(lambda: "mqtt: disconnected" in card("pi-b-humidity").locator(".fault-reason").inner_text(),
                       what="pi-b's card")
            assert central.health()["mqtt"]["summary"].startswith("mqtt: disconnected")
        finally:
            for server in (*pis.values(), central):
                server.stop()
            browser.close()
