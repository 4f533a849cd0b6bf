"""The hub's rings and sequence numbers, and the sampler's timing, faults and recovery."""

import threading
import time

from app.config import ChannelConfig
from app.hub import Hub
from app.sampler import Sampler
from app.sources import SensorFault, Source


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


def make_hub(history=5, names=("a", "b"), rates=None):
    out = Emitted()
    rates = rates or {}
    hub = Hub([ChannelConfig(name=n, source="random", rate_hz=rates.get(n, 1.0)) for n in names], history, emit=out.emit,
              enter_room=lambda sid, room: out.rooms.append(("enter", sid, room)),
              leave_room=lambda sid, room: out.rooms.append(("leave", sid, room)))
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
    hub, out = make_hub(names=("fast", "slow"), rates={"fast": 200, "slow": 5})
    hub.frame_s = 0.05  # 20 frames a second
    pump = threading.Thread(target=hub.pump, args=(lambda get: get(),))
    pump.start()

    def post(name, rate_hz, seconds):
        for i in range(int(rate_hz * seconds)):
            hub.post(name, time.time() * 1000, float(i), None)
            time.sleep(1 / rate_hz)

    slow = threading.Thread(target=post, args=("slow", 5, 1.0))
    slow.start()
    post("fast", 200, 1.0)
    slow.join()
    hub.close_inbox()
    pump.join(5)
    frames = [data for data, _ in out.of("samples")] + [data for data, _ in out.of("sample")]
    fast = [f for f in frames if f["channel"] == "fast"]
    assert len(fast) <= 25, f"{len(fast)} messages for 1 s of a 200 Hz channel at 20 frames a second"
    assert [s["seq"] for s, _ in out.samples() if s["channel"] == "fast"] == list(range(1, 201)), "every sample, in order"
    assert [d["seq"] for d, _ in out.of("sample") if d["channel"] == "slow"] == [1, 2, 3, 4, 5], \
        "a channel slower than the frame rate goes out sample by sample"
    assert [s["seq"] for s in hub.channels["fast"].history()][-1] == 200


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


def run_sampler(channel, read, seconds):
    reports = []
    sampler = Sampler(channel, lambda: Source(read), lambda *r: reports.append(r))
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    return reports


def test_sampler_keeps_its_rate_on_the_monotonic_clock():
    reports = run_sampler(ChannelConfig(name="a", source="random", rate_hz=50), lambda: 1.0, 1.0)
    good = [r for r in reports if r[3] is None]
    assert 45 <= len(good) <= 52
    assert all(r[2] == 1.0 for r in good)


def test_a_raising_sensor_is_a_fault_with_its_reason_then_recovers():
    broken = threading.Event()
    broken.set()

    def read():
        if broken.is_set():
            raise SensorFault("no echo received")
        return 7.0

    reports = []
    channel = ChannelConfig(name="a", source="random", rate_hz=20)
    sampler = Sampler(channel, lambda: Source(read), lambda *r: reports.append(r))
    sampler.start()
    time.sleep(0.3)
    broken.clear()
    time.sleep(1.0)  # backoff started at 0.5 s
    sampler.stop()
    faults = [r for r in reports if r[3] is not None]
    assert faults and faults[0][3] == "no echo received"
    assert len(faults) <= 2, "retries back off instead of hammering the sensor"
    assert reports[-1][2] == 7.0 and reports[-1][3] is None


def test_a_hung_sensor_times_out_and_is_reported_while_the_sampler_stays_alive():
    release = threading.Event()

    def read():
        release.wait()
        return 1.0

    channel = ChannelConfig(name="a", source="random", rate_hz=10, timeout_s=0.2)
    reports = []
    sampler = Sampler(channel, lambda: Source(read), lambda *r: reports.append(r))
    sampler.start()
    time.sleep(1.0)
    assert not sampler.stuck(time.monotonic()), "a faulty sensor is not a stuck sampler"
    release.set()
    time.sleep(1.5)
    sampler.stop()
    reasons = [r[3] for r in reports if r[3]]
    assert reasons[0] == "sensor read timed out after 0.2 s"
    assert [r for r in reports if r[3] is None], "it reads again once the sensor answers"


def test_an_unexpected_error_reopens_the_source():
    opened = []

    def open_source():
        opened.append(1)
        if len(opened) == 1:
            return Source(lambda: 1 / 0)
        return Source(lambda: 2.0)

    reports = []
    sampler = Sampler(ChannelConfig(name="a", source="random", rate_hz=20), open_source,
                      lambda *r: reports.append(r))
    sampler.start()
    time.sleep(0.9)
    sampler.stop()
    assert reports[0][3] == "ZeroDivisionError: division by zero"
    assert len(opened) == 2 and reports[-1][2] == 2.0


def test_restore_after_a_crash_numbers_past_what_may_have_been_sent():
    hub, _ = make_hub()
    saved = {"a": {"seq": 100, "samples": [{"seq": 99, "t": 1.0, "value": 1.0}, {"seq": 100, "t": 2.0, "value": 2.0}]}}
    hub.restore(saved, lagging_s=None)
    assert hub.channels["a"].seq == 100, "a clean stop resumes exactly"
    crashed, _ = make_hub()
    crashed.restore(saved, lagging_s=20.0)  # rate 1 Hz: it may have sent 20 more
    assert crashed.channels["a"].seq >= 100 + 20 * 1.5
    assert [s["seq"] for s in crashed.channels["a"].history()] == [99, 100]


def test_a_clock_stepped_back_does_not_reorder_samples():
    hub, out = make_hub()
    hub.post("a", 5000.0, 1.0, None)
    hub.post("a", 1000.0, 2.0, None)  # NTP stepped the clock back four seconds
    hub.post("a", 5100.0, 3.0, None)
    pump_all(hub)
    ts = [s["t"] for s in hub.channels["a"].history()]
    assert ts == sorted(ts) == [5000.0, 5000.0, 5100.0]
