"""The hub's side of the dashboard: levels emitted after their sample, faults that are not
levels, aggregates kept and restored with the raw ring, and which a window needs."""

import json
import logging

from app.config import ChannelConfig
from app.hub import Hub
from tests.test_hub_and_sampler import Emitted, pump_all

T0 = 1_699_999_980_000.0


def make_hub(history=5, **limits):
    out = Emitted()
    channel = ChannelConfig(name="t", source="random", rate_hz=1.0, decimals=1, **limits)
    hub = Hub([channel], history, emit=out.emit, enter_room=lambda sid, room: None, leave_room=lambda sid, room: None)
    return hub, out


def test_a_crossing_is_emitted_once_after_its_sample_and_a_fault_is_not_a_level(caplog):
    caplog.set_level(logging.INFO, logger="app.hub")
    hub, out = make_hub(alarm_above=50.0, hysteresis=5.0)
    for i, (value, fault) in enumerate([(20, None), (55, None), (56, None), (None, "no echo"), (48, None),
                                        (44, None)]):
        hub.post("t", T0 + i * 1000, value, fault)
    pump_all(hub)
    events = [(e, d.get("level") or d.get("status") or d.get("value")) for e, d, _ in out.calls]
    assert events == [("status", "ok"), ("sample", 20), ("sample", 55), ("level", "alarm"), ("sample", 56),
                      ("status", "fault"), ("status", "ok"), ("sample", 48), ("sample", 44), ("level", "ok")]
    assert [d for d, _ in out.of("level")] == [
        {"channel": "t", "level": "alarm", "value": 55, "limit": 50.0},
        {"channel": "t", "level": "ok", "value": 44, "limit": 50.0}]
    assert all(to == "channel:t" for _, to in out.of("level"))
    logged = [(r.levelname, r.CHANNEL, r.LEVEL) for r in caplog.records if hasattr(r, "LEVEL")]
    assert logged == [("WARNING", "t", "alarm"), ("INFO", "t", "ok")]
    assert hub.health(0.0)["t"]["level"] == "ok"


def test_a_window_longer_than_the_ring_is_served_from_aggregates():
    hub, out = make_hub(history=5)
    for i in range(8):
        hub.post("t", T0 + i * 1000, float(i), None)
    pump_all(hub)
    channel = hub.channels["t"]
    assert channel.raw_span_s == 5.0
    raw = channel.window(5, T0 + 7000)
    assert raw["kind"] == "raw" and [s["seq"] for s in raw["samples"]] == [4, 5, 6, 7, 8]
    agg = channel.window(60, T0 + 7000)
    assert agg["kind"] == "aggregates" and agg["width_s"] == 1 and agg["seq"] == 8
    assert [b["mean"] for b in agg["buckets"]] == [float(i) for i in range(8)], "older than the ring, still there"


def test_aggregates_are_saved_and_restored_with_the_raw_ring():
    hub, out = make_hub(history=5)
    for i in range(8):
        hub.post("t", T0 + i * 1000, float(i), None)
    pump_all(hub)
    saved = json.loads(json.dumps(hub.snapshot()))
    again, _ = make_hub(history=5)
    again.restore(saved)
    assert again.channels["t"].window(60, T0 + 7000) == hub.channels["t"].window(60, T0 + 7000)
    saved["t"]["aggregates"]["tiers"][0]["count"][0] = "x"  # damaged aggregates cost only themselves
    third, _ = make_hub(history=5)
    third.restore(saved)
    assert third.channels["t"].seq == 8 and len(third.channels["t"].history()) == 5
    assert third.channels["t"].window(60, T0 + 7000)["buckets"] == []


def test_a_client_gets_the_aggregates_its_window_needs():
    hub, out = make_hub(history=5)
    hub.post("t", T0, 1.0, None)
    pump_all(hub)
    out.calls.clear()
    hub.connect("sid", "10.0.0.1", None, window="1h")
    assert [(e, isinstance(d, dict) and d.get("window")) for e, d, _ in out.calls] == [
        ("channels", False), ("history", None), ("aggregates", "1h")]
    out.calls.clear()
    hub.set_window("sid", "24h")
    assert [(e, d["window"], d["width_s"]) for e, d, _ in out.calls] == [("aggregates", "24h", 60)]
