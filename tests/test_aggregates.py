"""The aggregates: fixed memory, exact buckets, gaps as gaps, clock steps, save and restore."""

import json
import tracemalloc

import pytest

from app.aggregates import SLOT_BYTES, Aggregates, Tier, window_s

T0 = 1_699_999_980_000.0  # a whole minute, in epoch ms


def fed(tier_sizes=((1, 20), (60, 5)), samples=()):
    agg = Aggregates(tier_sizes)
    for seq, (t, v) in enumerate(samples, 1):
        agg.add(seq, t, v)
    return agg


def test_buckets_hold_min_max_mean_count_per_width():
    agg = fed(samples=[(T0 + 100, 1.0), (T0 + 600, 3.0), (T0 + 1200, 5.0)])
    seconds = agg.window(10, T0 + 1200)
    assert seconds["width_s"] == 1 and seconds["seq"] == 3
    assert seconds["buckets"] == [{"t": T0, "min": 1.0, "max": 3.0, "mean": 2.0, "count": 2},
                                  {"t": T0 + 1000, "min": 5.0, "max": 5.0, "mean": 5.0, "count": 1}]
    agg.add(4, T0 + 61_000, 7.0)
    assert agg.window(10, T0 + 61_000)["buckets"] == [
        {"t": T0 + 61_000, "min": 7.0, "max": 7.0, "mean": 7.0, "count": 1}], "only the window's buckets"
    minutes = agg.window(300, T0 + 61_000)
    assert minutes["width_s"] == 60
    assert minutes["buckets"] == [{"t": T0, "min": 1.0, "max": 5.0, "mean": 3.0, "count": 3},
                                  {"t": T0 + 60_000, "min": 7.0, "max": 7.0, "mean": 7.0, "count": 1}]


def test_the_finest_tier_that_spans_the_window_is_chosen():
    agg = Aggregates()  # the default: 3720 seconds, 1500 minutes
    assert [agg.tier_for(window_s(w)).width_s for w in ("1m", "5m", "1h", "24h")] == [1, 1, 1, 60]
    with pytest.raises(ValueError, match="expected one of 1m, 5m, 1h, 24h, got '2h'"):
        window_s("2h")


def test_memory_is_bounded_whatever_is_fed():
    """Ten minutes at 50 Hz in rings of 20 seconds and 5 minutes: 25 slots, however many samples."""
    agg = fed()
    assert agg.bytes_bound() == 25 * SLOT_BYTES
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    t = T0
    for seq in range(1, 30_001):  # 10 minutes at 50 Hz
        t += 20.0
        agg.add(seq, t, float(seq % 7))
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename")
                if s.traceback[0].filename.endswith("aggregates.py"))
    tracemalloc.stop()
    assert grown < 1024, f"aggregates grew by {grown} bytes for 30000 samples"  # a few ints, not per sample
    assert len(agg.tiers[0].buckets(0)) == 20 and len(agg.tiers[1].buckets(0)) == 5
    assert sum(b["count"] for b in agg.tiers[0].buckets(t - 10_000)) == 501  # 10 s and the one on the edge


def test_a_pause_is_a_gap_not_a_bucket():
    agg = fed(samples=[(T0, 1.0), (T0 + 1000, 2.0), (T0 + 5000, 3.0)])
    assert [b["t"] - T0 for b in agg.window(10, T0 + 5000)["buckets"]] == [0, 1000, 5000]


def test_a_clock_stepped_forward_past_the_ring_leaves_nothing_stale():
    agg = fed(samples=[(T0 + i * 1000, float(i)) for i in range(8)])
    later = T0 + 3_600_000
    agg.add(9, later, 42.0)
    assert agg.window(10, later)["buckets"] == [{"t": later, "min": 42.0, "max": 42.0, "mean": 42.0, "count": 1}]
    # the lap: slot (later // 1000) % 10 held bucket 0 before; it is not mistaken for data now
    assert len(agg.tiers[0].buckets(0)) == 1


def test_a_clock_stepped_back_counts_for_now_and_never_rewrites_the_past():
    agg = fed(samples=[(T0, 1.0), (T0 + 3000, 2.0)])
    agg.add(3, T0 - 50_000, 9.0)  # NTP set the clock back a minute
    buckets = agg.window(10, T0 + 3000)["buckets"]
    assert buckets == [{"t": T0, "min": 1.0, "max": 1.0, "mean": 1.0, "count": 1},
                       {"t": T0 + 3000, "min": 2.0, "max": 9.0, "mean": 5.5, "count": 2}]


def test_snapshot_and_restore_give_back_the_same_buckets_through_json():
    agg = fed(samples=[(T0 + i * 700, float(i % 5)) for i in range(40)])
    saved = json.loads(json.dumps(agg.snapshot()))
    back = fed()
    back.restore(saved)
    now = T0 + 40 * 700
    for window in (10, 300):
        assert back.window(window, now) == agg.window(window, now)
    back.add(41, now + 100, 100.0)  # and it goes on from there
    assert back.window(10, now + 100)["buckets"][-1]["max"] == 100.0


def test_a_restored_ring_of_another_size_keeps_the_newest_and_drops_unknown_widths():
    agg = fed(((1, 10), (10, 3)), samples=[(T0 + i * 1000, float(i)) for i in range(10)])
    back = Aggregates(((1, 4), (60, 5)))
    back.restore(agg.snapshot())
    assert [b["min"] for b in back.tiers[0].buckets(0)] == [6.0, 7.0, 8.0, 9.0]
    assert back.tiers[1].buckets(0) == []


@pytest.mark.parametrize("damage", [
    lambda s: s["tiers"][0].update(n=s["tiers"][0]["n"][:-1]),
    lambda s: s["tiers"][0]["count"].__setitem__(0, 0),
    lambda s: s["tiers"][1]["min"].__setitem__(0, "x"),
    lambda s: s["tiers"][1]["max"].__setitem__(0, -1e9),
    lambda s: s.pop("seq"),
])
def test_a_damaged_snapshot_is_refused_whole(damage):
    agg = fed(samples=[(T0 + i * 1000, float(i)) for i in range(5)])
    saved = json.loads(json.dumps(agg.snapshot()))
    damage(saved)
    back = fed(samples=[(T0, 5.0)])
    with pytest.raises((ValueError, TypeError, KeyError)):
        back.restore(saved)
    assert back.window(10, T0)["buckets"] == [{"t": T0, "min": 5.0, "max": 5.0, "mean": 5.0, "count": 1}]


def test_a_tier_alone_is_exact_over_a_lap():
    tier = Tier(1, 3)
    for i in range(7):
        tier.add(T0 + i * 1000, float(i))
    assert [b["min"] for b in tier.buckets(0)] == [4.0, 5.0, 6.0]
