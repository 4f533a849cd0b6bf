"""Sampling: one native thread per channel reads its source at the channel's rate.

Sensor reads block: gpiozero waits for echoes and capacitor charges, lgpio calls back on
its own threads. So reads never run in the server's event loop. Each channel has a sampler
thread that keeps time with the monotonic clock, and a reader thread that does the read, so
a read that hangs is abandoned after ``timeout_s`` and reported as a fault instead of
stopping the sampler (a Python thread cannot be killed, only left behind).

Samplers hand what they read to the hub through a callback that must be thread-safe.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

from .config import ChannelConfig
from .sources import SensorFault, Source

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


class SensorTimeout(SensorFault):
    pass


class Reader:
    """Runs one call at a time on a daemon thread, so a hung sensor can be abandoned, not waited for."""

    def __init__(self, name: str):
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._busy = False
        self._thread = threading.Thread(target=self._serve, name=f"livedash-read-{name}", daemon=True)
        self._thread.start()

    def call(self, fn: Callable, timeout_s: float):
        """*fn*'s result, or its error raised here; SensorTimeout after *timeout_s* of real time,
        whatever clock the sampler keeps (a hung thread is what this guards against)."""
        if self._busy:
            raise SensorTimeout("sensor read still hung")
        done, box = threading.Event(), {}
        self._busy = True
        self._requests.put((fn, box, done))
        if not done.wait(timeout_s):
            raise SensorTimeout(f"sensor read timed out after {timeout_s:g} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    @property
    def busy(self) -> bool:
        return self._busy

    def _serve(self) -> None:
        while True:
            fn, box, done = self._requests.get()
            if fn is None:
                return
            try:
                box["value"] = fn()
            except BaseException as e:  # handed to the caller, who decides
                box["error"] = e
            self._busy = False
            done.set()

    def close(self) -> None:
        self._requests.put((None, None, None))


class Clock:
    """Real time: what a sampler reads and sleeps on. Tests give it a fake one and count exactly."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)  # the wall clock, epoch seconds: what the page plots

    @staticmethod
    def sleep(stop: threading.Event, seconds: float) -> bool:
        """Sleep *seconds*, or less when *stop* is set; True when stopping."""
        return stop.wait(seconds)


class Sampler:
    """Reads one channel at its rate; reports each reading or fault through *report*.

    ``report(name, t_ms, value, fault)``: *t_ms* is the wall clock in epoch milliseconds
    (what the page plots); *fault* is None for a good reading, else the reason.
    """

    def __init__(self, channel: ChannelConfig, open_source: Callable[[], Source],
                 report: Callable[[str, float, float | None, str | None], None], clock: Clock = Clock()):
        self.channel = channel
        self._open_source = open_source
        self._report = report
        self._clock = clock
        self._source: Source | None = None
        self._reader = Reader(channel.name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"livedash-sample-{channel.name}", daemon=True)
        self.due = clock.monotonic()  # the loop promises to come round again by this monotonic time
        self.died: str | None = None  # why the loop ended without being stopped

    def start(self) -> None:
        self._thread.start()

    def problem(self, now: float, grace_s: float = 5.0) -> str | None:
        """Why this sampler needs a restart: its loop died, or missed its own deadline.

        A faulty sensor is not a problem here (it is shown and retried); a sampler that no
        longer samples is, whether it hangs or its thread has ended.
        """
        if self.died is not None:
            return f"sampler {self.channel.name} has died ({self.died})"
        started, alive = self._thread.ident is not None, self._thread.is_alive()
        if started and not alive and not self._stop.is_set():
            return f"sampler {self.channel.name} has died"
        if alive and now > self.due + grace_s:
            return f"sampler {self.channel.name} is stuck"
        return None

    def stuck(self, now: float, grace_s: float = 5.0) -> bool:
        return self.problem(now, grace_s) is not None

    def run(self) -> None:
        """The loop, until stopped: on the sampler's own thread (``start``), or a test's."""
        try:
            self._loop()
        except BaseException as e:  # SystemExit, KeyboardInterrupt... from a read: say so, loudly
            self.died = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log.critical("channel %s: sampler died: %s", self.channel.name, self.died, exc_info=True,
                         extra={"CHANNEL": self.channel.name})
            self._report(self.channel.name, self._clock.time() * 1000, None, f"sampler died: {self.died}")

    def _loop(self) -> None:
        clock, name = self._clock, self.channel.name
        period, timeout = self.channel.period_s, self.channel.timeout_s
        backoff = BACKOFF_FIRST_S
        next_at = clock.monotonic()
        while not self._stop.is_set():
            self.due = clock.monotonic() + 2 * timeout
            try:
                value = self._read(timeout)
            except Exception as e:
                reason = str(e) if isinstance(e, SensorFault) else f"{type(e).__name__}: {e}"
                self._report(name, clock.time() * 1000, None, reason)
                if not isinstance(e, SensorFault):
                    self._close_source()  # a device error: open it afresh on the next try
                self.due = clock.monotonic() + backoff + 2 * timeout
                clock.sleep(self._stop, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                next_at = clock.monotonic()
                continue
            backoff = BACKOFF_FIRST_S
            self._report(name, clock.time() * 1000, value, None)
            next_at += period
            now = clock.monotonic()
            if now - next_at > period:  # a whole period behind (a slow read): start afresh, no burst
                next_at = now
            # Less than that (a busy machine woke us late) is made up on the next turn, so the
            # channel keeps its rate on average instead of drifting slower with every late wake-up.
            self.due = next_at + 2 * timeout
            clock.sleep(self._stop, max(0.0, next_at - now))

    def _read(self, timeout: float) -> float:
        if self._source is None:
            self._source = self._reader.call(self._open_source, timeout)
        return self._reader.call(self._source.read, timeout)

    def _close_source(self) -> None:
        if self._source is not None and not self._reader.busy:
            try:
                self._source.close()
            except Exception as e:
                log.warning("channel %s: closing its source failed: %s", self.channel.name, e)
            self._source = None

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop sampling and let go of the hardware; a read still hung is left behind."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._close_source()
        self._reader.close()
