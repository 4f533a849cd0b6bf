"""A real server process on a free port, real Socket.IO clients, in both async modes.

Nothing here counts samples per second of real time (the machine is shared and loaded):
rates are the sampler's, tested on a fake clock (tests/test_hub_and_sampler.py), and shown
for real by ./bench/run. Here every wait is for a condition, with a deadline.
"""

import time

import pytest

from tests.support.server import Recorder, ServerProcess, get_json, wait_until

TWO_CHANNELS = """
[[channels]]
name = "fast"
source = "random"
rate_hz = 20
min = 0
max = 10
decimals = 3

[[channels]]
name = "slow"
source = "random"
rate_hz = 5
min = 100
max = 200
decimals = 1
unit = "V"
"""


@pytest.fixture(params=["eventlet", "threading"])
def server(request, tmp_path):
    with ServerProcess(tmp_path, TWO_CHANNELS, args=("--async-mode", request.param)) as s:
        yield s


def seqs(samples):
    return [s["seq"] for s in samples]


def sampled(server, name):
    return server.health()["channels"][name]["seq"]


def test_history_then_live_samples_on_connect(server):
    # Sampling starts with the server, not with the first client.
    wait_until(lambda: sampled(server, "fast") >= 10, what="sampling before anyone connects")
    with Recorder(server.url) as client:
        wait_until(lambda: len(client.samples("fast")) >= 5, what="live samples")
    names = [name for _, name, _ in client.events]
    assert names[0] == "channels"
    channels = {c["name"]: c for c in client.of("channels")[0]}
    assert channels["slow"]["unit"] == "V" and channels["fast"]["rate_hz"] == 20
    assert channels["fast"]["status"] == "ok"
    history = {h["channel"]: h["samples"] for h in client.of("history")}
    assert set(history) == {"fast", "slow"}
    assert len(history["fast"]) >= 10, "what was sampled before anyone connected"
    assert seqs(history["fast"]) == list(range(1, len(history["fast"]) + 1))
    live = client.samples("fast")
    assert live[0]["seq"] <= history["fast"][-1]["seq"] + 1, "no gap between history and live"
    for s in live:
        assert set(s) == {"channel", "seq", "t", "value"} and 0 <= s["value"] <= 10
        assert s["value"] == round(s["value"], 3)


def test_every_sample_of_every_channel_arrives_in_order(server):
    with Recorder(server.url) as client:
        wait_until(lambda: len(client.samples("fast")) >= 40 and len(client.samples("slow")) >= 10, what="samples")
    for name in ("fast", "slow"):
        samples = client.samples(name)
        assert seqs(samples) == list(range(samples[0]["seq"], samples[0]["seq"] + len(samples))), name
        ts = [s["t"] for s in samples]
        assert ts == sorted(ts), name


def test_subscribe_and_unsubscribe_isolate_clients(server):
    with Recorder(server.url, auth={"channels": ["slow"]}) as only_slow, Recorder(server.url) as everything:
        wait_until(lambda: len(everything.samples("fast")) >= 10, what="samples for the full client")
        assert only_slow.samples("fast") == []
        assert [h["channel"] for h in only_slow.of("history")] == ["slow"]
        assert only_slow.call("subscribe", "fast") == {"ok": True, "channels": ["fast"]}
        assert only_slow.call("unsubscribe", ["slow"]) == {"ok": True, "channels": ["slow"]}
        n_slow = len(only_slow.samples("slow"))
        wait_until(lambda: len(only_slow.samples("fast")) >= 10, what="samples after subscribe")
        time.sleep(0.5)
        assert len(only_slow.samples("slow")) <= n_slow + 1  # at most one already on its way
        assert [h["channel"] for h in only_slow.of("history")] == ["slow", "fast"]
        assert len(everything.samples("slow")) >= 3, "the other client kept everything"


def test_bad_events_are_refused_and_others_keep_their_rate(server):
    with Recorder(server.url) as good, Recorder(server.url) as bad:
        assert bad.call("subscribe", 42)["ok"] is False
        assert "no such channel: nope" in bad.call("subscribe", ["fast", "nope"])["error"]
        assert bad.call("unsubscribe", {"x": 1})["ok"] is False
        assert bad.call("set_rate", {"channel": "fast", "rate_hz": 200}) == {"ok": False, "error": "unknown event 'set_rate'"}
        start = len(good.samples("fast"))
        wait_until(lambda: len(good.samples("fast")) >= start + 10, what="the good client served on")
    assert get_json(server.url + "/healthz")["channels"]["fast"]["rate_hz"] == 20


def test_unknown_channel_at_connect_is_refused_with_a_reason(server):
    import socketio

    client = Recorder(server.url, auth={"channels": ["nope"]})
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()
    assert client.of("connect_error") == [{"message": "no such channel: nope"}]


def test_a_reconnecting_client_resyncs_without_duplicates_or_gaps(server):
    first = Recorder(server.url).connect()
    wait_until(lambda: len(first.samples("fast")) >= 5, what="samples")
    first.disconnect()
    away_from = sampled(server, "fast")
    wait_until(lambda: sampled(server, "fast") >= away_from + 10, what="samples while it is away")
    second = Recorder(server.url).connect()
    wait_until(lambda: len(second.samples("fast")) >= 5, what="samples after reconnecting")
    second.disconnect()

    # What the page does: merge everything by seq.
    merged = {}
    for recorder in (first, second):
        for h in recorder.of("history"):
            if h["channel"] == "fast":
                for s in h["samples"]:
                    assert merged.setdefault(s["seq"], s) == s, "one seq, two different samples"
        for s in recorder.samples("fast"):
            s = {k: s[k] for k in ("seq", "t", "value")}
            assert merged.setdefault(s["seq"], s) == s
    order = sorted(merged)
    assert order == list(range(1, order[-1] + 1)), "every sample from the first on, none missing"
    ts = [merged[q]["t"] for q in order]
    assert ts == sorted(ts)


def test_http_api(server):
    channels = get_json(server.url + "/api/channels")
    assert [c["name"] for c in channels] == ["fast", "slow"]
    wait_until(lambda: get_json(server.url + "/api/history/slow")["samples"], what="history")
    history = get_json(server.url + "/api/history/slow")
    assert history["channel"] == "slow" and history["samples"][0]["seq"] == 1
    since = history["samples"][-1]["seq"]
    later = get_json(server.url + f"/api/history/slow?since={since}")["samples"]
    assert all(s["seq"] > since for s in later)
    health = server.health()
    assert health["status"] == "ok" and health["clients"] == 0
    assert health["channels"]["fast"]["last_sample_age_s"] >= 0  # its arithmetic: test_hub_and_sampler.py
    import urllib.error
    with pytest.raises(urllib.error.HTTPError) as e:
        get_json(server.url + "/api/history/nope")
    assert e.value.code == 404 and b"no channel named" in e.value.read()


def test_sigterm_stops_cleanly(server):
    with Recorder(server.url) as client:
        wait_until(lambda: client.samples("fast"), what="samples")
        assert server.stop() == 0
        wait_until(lambda: not client.client.connected, what="the client to see the server go")
    assert client.of("bye") == [{"reason": "server stopping"}]


def test_connection_caps_and_request_rate_are_enforced_with_reasons(tmp_path):
    import socketio

    config = '[server]\nmax_clients = 3\nmax_clients_per_address = 2\n' + TWO_CHANNELS
    with ServerProcess(tmp_path, config) as server:
        with Recorder(server.url) as first, Recorder(server.url):
            third = Recorder(server.url)
            with pytest.raises(socketio.exceptions.ConnectionError):
                third.connect()
            assert third.of("connect_error") == [{"message": "too many connections from 127.0.0.1 (2)"}]

            started = time.monotonic()
            answers = [first.call("subscribe", "fast") for _ in range(40)]
            elapsed = time.monotonic() - started
            granted = [a["ok"] for a in answers]
            assert granted[:20] == [True] * 20, "a burst of 20 is allowed"
            # Then 5 a second: however slow this machine made the 40 calls, no more than that.
            assert granted.count(True) <= 20 + 5 * elapsed + 1, (granted, elapsed)
            assert {"ok": False, "error": "too many requests (at most 5 a second)"} in answers
            n = len(first.samples("fast"))
            wait_until(lambda: len(first.samples("fast")) > n, what="samples after the refusal: refused, not cut off")
        assert server.output().count("refused (rate)") == 1, "logged once per client and kind"
