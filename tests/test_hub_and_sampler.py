"""The hub's rings and sequence numbers, and the sampler's timing, faults and recovery.

Timing runs on a FakeClock (tests/support/clock.py): the counts are exact, whatever the
machine's load.
"""

import threading

import pytest

from app.config import ChannelConfig
from app.hub import Hub
from app.sampler import Sampler
from app.sources import SensorFault, Source
from tests.support.clock import WALL_AT_ZERO, FakeClock
from tests.support.server import wait_until


class Emitted:
    """Collects what the hub emits, in the shape Flask-SocketIO's emit is called."""

    def __init__(self):
        self.calls = []
        self.rooms = []

    def emit(self, event, data, to=None):
        self.calls.append((event, data, to))

    def of(self, event):
        return [(data, to) for e, data, to in self.calls if e == event]

    def samples(self):
        """Every sample sent, alone or in a frame, as (sample with its channel, room)."""
        out = []
        for event, data, to in self.calls:
            if event == "sample":
                out.append((data, to))
            elif event == "samples":
                out.extend(({"channel": data["channel"], **s}, to) for s in data["samples"])
        return out


def make_hub(history=5, names=("a", "b"), rates=None, **kwargs):
    out = Emitted()
    rates = rates or {}
    hub = Hub([ChannelConfig(name=n, source="random", rate_hz=rates.get(n, 1.0)) for n in names], history, emit=out.emit,
              enter_room=lambda sid, room: out.rooms.append(("enter", sid, room)),
              leave_room=lambda sid, room: out.rooms.append(("leave", sid, room)), **kwargs)
    return hub, out


def pump_all(hub):
    hub.close_inbox()
    hub.pump(lambda get: get())


def test_ring_keeps_the_newest_with_increasing_seq():
    hub, out = make_hub(history=5)
    for i in range(8):
        hub.post("a", 1000.0 + i, float(i), None)
    hub.post("b", 2000.0, 42.0, None)
    pump_all(hub)
    a = hub.channels["a"]
    assert [s["seq"] for s in a.history()] == [4, 5, 6, 7, 8]
    assert [s["value"] for s in a.history()] == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert [s["seq"] for s in a.history(since=6)] == [7, 8]
    assert hub.channels["b"].history() == [{"seq": 1, "t": 2000.0, "value": 42.0}]
    samples = out.samples()
    assert len(samples) == 9
    assert samples[0] == ({"channel": "a", "seq": 1, "t": 1000.0, "value": 0.0}, "channel:a")
    assert [s for s in samples if s[1] == "channel:b"] == [({"channel": "b", "seq": 1, "t": 2000.0, "value": 42.0},
                                                             "channel:b")]


def test_a_fast_channel_goes_out_in_frames_with_every_sample():
    """One second of a 128 Hz and a 4 Hz channel at 16 frames a second, posted on a fake clock."""
    clock = FakeClock()
    hub, out = make_hub(names=("fast", "slow"), rates={"fast": 128, "slow": 4}, frame_hz=16, clock=clock.monotonic)
    steps = iter(range(128))

    def wait_for(get):  # the pump waits here: move time to the next read, post it, let the pump take it
        i = next(steps, None)
        if i is None:
            hub.close_inbox()
        else:
            clock.now = i / 128
            hub.post("fast", clock.time() * 1000, float(i), None)
            if i % 32 == 0:
                hub.post("slow", clock.time() * 1000, float(i), None)
        return get()

    hub.pump(wait_for)
    fast = [data for event, data, _ in out.calls if event in ("sample", "samples") and data["channel"] == "fast"]
    assert [len(f.get("samples", [f])) for f in fast] == [1] + [8] * 15 + [7], \
        "the first at once, then one frame every 1/16 s, the rest when the pump closes"
    assert [s["seq"] for s, _ in out.samples() if s["channel"] == "fast"] == list(range(1, 129)), "every sample, in order"
    assert [d["seq"] for d, _ in out.of("sample") if d["channel"] == "slow"] == [1, 2, 3, 4], \
        "a channel slower than the frame rate goes out sample by sample"
    assert [s["seq"] for s in hub.channels["fast"].history()][-1] == 128


def test_a_snapshot_keeps_samples_still_waiting_for_their_frame():
    hub, out = make_hub(names=("fast",), rates={"fast": 200})
    for i in range(3):
        hub._take("fast", 1000.0 + i, float(i), None)  # read, numbered, not yet framed
    saved = hub.snapshot()["fast"]
    assert saved["seq"] == 3 and [s["seq"] for s in saved["samples"]] == [1, 2, 3]


def test_status_goes_to_fault_and_back_and_is_pushed_once_each_time():
    hub, out = make_hub()
    hub.post("a", 1.0, 1.0, None)
    hub.post("a", 2.0, None, "no echo")
    hub.post("a", 3.0, None, "no echo")  # the same fault again is not news
    hub.post("a", 4.0, 2.0, None)
    pump_all(hub)
    statuses = [data for data, _ in out.of("status")]
    assert statuses == [{"channel": "a", "status": "ok", "reason": None},
                        {"channel": "a", "status": "fault", "reason": "no echo"},
                        {"channel": "a", "status": "ok", "reason": None}]
    assert [s["seq"] for s in hub.channels["a"].history()] == [1, 2], "a fault takes no seq"
    events = [(e, d.get("status") or d.get("seq")) for e, d, _ in out.calls]
    assert events == [("status", "ok"), ("sample", 1), ("status", "fault"), ("status", "ok"), ("sample", 2)], \
        "the page hears ok before the sample that ends a fault, and never an empty frame"


def test_connect_sends_channels_then_history_and_joins_rooms():
    hub, out = make_hub()
    hub.post("a", 1.0, 1.0, None)
    pump_all(hub)
    out.calls.clear()
    hub.connect("sid1", "10.0.0.7", None)
    assert [e for e, _, _ in out.calls] == ["channels", "history", "history"]
    assert all(to == "sid1" for _, _, to in out.calls)
    assert out.rooms == [("enter", "sid1", "channel:a"), ("enter", "sid1", "channel:b")]
    assert list(hub.clients) == ["sid1"] and hub.clients_from("10.0.0.7") == 1
    out.calls.clear()
    hub.subscribe("sid1", ["a"])  # already has it: nothing sent again
    assert out.calls == []
    hub.unsubscribe("sid1", ["a"])
    hub.subscribe("sid1", ["a"])
    assert [e for e, _, _ in out.calls] == ["history"]
    hub.disconnect("sid1")
    assert hub.clients == {}


def run_sampler(channel, read, seconds, clock=None):
    """Run *channel*'s sampler in this thread on a fake clock until *seconds*; what it reported."""
    clock = clock or FakeClock()
    clock.until = seconds
    reports = []
    sampler = Sampler(channel, lambda: Source(read), lambda *r: reports.append(r), clock=clock)
    sampler.run()
    sampler.stop()
    return reports


def seconds(reports):
    """When each report was made, in seconds on the fake clock."""
    return [r[1] / 1000 - WALL_AT_ZERO for r in reports]


def test_sampler_keeps_its_rate_on_the_monotonic_clock():
    reports = run_sampler(ChannelConfig(name="a", source="random", rate_hz=64), lambda: 1.0, 1.0)
    assert seconds(reports) == [i / 64 for i in range(64)]
    assert all(r[2] == 1.0 and r[3] is None for r in reports)


def test_a_late_wake_up_is_made_up_on_the_next_turn():
    clock = FakeClock()
    clock.late = [1 / 256]  # a busy machine wakes the sampler 4 ms late, once
    reports = run_sampler(ChannelConfig(name="a", source="random", rate_hz=64), lambda: 1.0, 1.0, clock)
    assert seconds(reports)[:4] == pytest.approx([0, 1 / 64 + 1 / 256, 2 / 64, 3 / 64], abs=1e-6), \
        "back on its beat, not 4 ms behind for good"
    assert len(reports) == 64


def test_a_read_slower_than_the_period_starts_afresh_without_a_burst():
    clock = FakeClock()

    def slow_read():
        clock.now += 1 / 16  # four periods of a 64 Hz channel
        return 1.0

    reports = run_sampler(ChannelConfig(name="a", source="random", rate_hz=64), slow_read, 1.0, clock)
    assert seconds(reports) == [i / 16 for i in range(1, 17)]
    assert set(clock.sleeps) == {0.0}, "no catching up on the missed periods"


def test_a_raising_sensor_is_a_fault_with_its_reason_then_recovers():
    clock = FakeClock()

    def read():
        if clock.now < 0.25:
            raise SensorFault("no echo received")
        return 7.0

    reports = run_sampler(ChannelConfig(name="a", source="random", rate_hz=16), read, 1.0, clock)
    assert [(t, r[2], r[3]) for t, r in zip(seconds(reports), reports)] == \
        [(0.0, None, "no echo received")] + [(0.5 + i / 16, 7.0, None) for i in range(8)], \
        "one fault, a retry after 0.5 s, then its rate again"


def test_retries_back_off_doubling_up_to_30_s():
    clock = FakeClock()

    def read():
        raise SensorFault("no echo received")

    reports = run_sampler(ChannelConfig(name="a", source="random", rate_hz=10), read, 100.0, clock)
    assert seconds(reports) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 61.5, 91.5]
    assert clock.sleeps == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_a_hung_sensor_times_out_and_is_reported_while_the_sampler_stays_alive():
    """The read timeout is real time (a hung thread is what it guards against): waited for, never counted."""
    release = threading.Event()

    def read():
        release.wait()
        return 1.0

    channel = ChannelConfig(name="a", source="random", rate_hz=10, timeout_s=0.2)
    reports = []
    sampler = Sampler(channel, lambda: Source(read), lambda *r: reports.append(r))
    sampler.start()
    try:
        wait_until(lambda: [r for r in reports if r[3]], what="the timeout reported")
        assert reports[0][3] == "sensor read timed out after 0.2 s"
        assert sampler.problem(sampler.due) is None, "a faulty sensor is not a stuck sampler"
        release.set()
        wait_until(lambda: [r for r in reports if r[3] is None], what="a reading once the sensor answers")
    finally:
        release.set()
        sampler.stop()


def test_an_unexpected_error_reopens_the_source():
    opened = []

    def open_source():
        opened.append(1)
        if len(opened) == 1:
            return Source(lambda: 1 / 0)
        return Source(lambda: 2.0)

    reports = []
    clock = FakeClock(until=1.0)
    sampler = Sampler(ChannelConfig(name="a", source="random", rate_hz=16), open_source,
                      lambda *r: reports.append(r), clock=clock)
    sampler.run()
    sampler.stop()
    assert reports[0][3] == "ZeroDivisionError: division by zero"
    assert len(opened) == 2 and [r[2] for r in reports[1:]] == [2.0] * 8


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit("bye"), GeneratorExit])
def test_a_base_exception_in_a_read_is_a_dead_sampler_not_a_silent_one(error):
    """Not an Exception, so not a sensor fault: the sampler ends, says why, and counts as stuck."""
    clock = FakeClock(until=10.0)
    reads = []

    def read():
        reads.append(clock.now)
        if len(reads) == 3:
            raise error
        return 1.0

    reports = []
    sampler = Sampler(ChannelConfig(name="a", source="random", rate_hz=1), lambda: Source(read),
                      lambda *r: reports.append(r), clock=clock)
    sampler.run()
    name = error.__name__ if isinstance(error, type) else type(error).__name__
    died = f"{name}: bye" if isinstance(error, SystemExit) else name
    assert sampler.died == died
    assert [r[3] for r in reports] == [None, None, f"sampler died: {died}"], "the page is told"
    assert sampler.stuck(clock.now) and sampler.problem(clock.now) == f"sampler a has died ({died})"
    sampler.stop()


def test_a_sampler_thread_that_ended_is_stuck():
    def read():
        raise KeyboardInterrupt

    sampler = Sampler(ChannelConfig(name="a", source="random", rate_hz=10), lambda: Source(read), lambda *r: None)
    assert not sampler.stuck(sampler.due), "not started is not dead"
    sampler.start()
    wait_until(lambda: not sampler._thread.is_alive(), what="the sampler thread to end")
    assert sampler.problem(sampler.due) == "sampler a has died (KeyboardInterrupt)"
    sampler.stop()


def test_restore_after_a_crash_numbers_past_what_may_have_been_sent():
    hub, _ = make_hub()
    saved = {"a": {"seq": 100, "samples": [{"seq": 99, "t": 1.0, "value": 1.0}, {"seq": 100, "t": 2.0, "value": 2.0}]}}
    hub.restore(saved, lagging_s=None)
    assert hub.channels["a"].seq == 100, "a clean stop resumes exactly"
    crashed, _ = make_hub()
    crashed.restore(saved, lagging_s=20.0)  # rate 1 Hz: it may have sent 20 more
    assert crashed.channels["a"].seq >= 100 + 20 * 1.5
    assert [s["seq"] for s in crashed.channels["a"].history()] == [99, 100]


def test_staleness_is_the_age_of_the_last_sample_on_the_hubs_clock():
    clock = FakeClock()
    hub, _ = make_hub(clock=clock.monotonic)
    assert hub.health(clock.now)["a"]["last_sample_age_s"] is None, "nothing read yet"
    clock.now = 1.0
    hub.post("a", clock.time() * 1000, 1.0, None)
    pump_all(hub)
    clock.now = 3.5
    assert hub.health(clock.now)["a"]["last_sample_age_s"] == 2.5


def test_a_clock_stepped_back_does_not_reorder_samples():
    hub, out = make_hub()
    hub.post("a", 5000.0, 1.0, None)
    hub.post("a", 1000.0, 2.0, None)  # NTP stepped the clock back four seconds
    hub.post("a", 5100.0, 3.0, None)
    pump_all(hub)
    ts = [s["t"] for s in hub.channels["a"].history()]
    assert ts == sorted(ts) == [5000.0, 5000.0, 5100.0]
