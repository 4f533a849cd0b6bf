"""Prometheus: /metrics in the text format, from the official prometheus_client.

Nothing is updated on the hot path for a scrape: the collector reads the app's own state
(the hub's channels, the clients, the MQTT link) when Prometheus asks, the way exporters
for other programs do. The only counting done as samples flow is ``Counts``, a hub
observer adding one to a dict entry, since the hub keeps no totals of its own.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .levels import LEVELS

STATUSES = ("starting", "ok", "fault")
LINK_STATES = ("connecting", "connected", "disconnected")


class Counts:
    """Samples and faults per channel since start: the hub tells it, in the pump."""

    def __init__(self) -> None:
        self.samples: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def sample(self, channel, sample) -> None:
        self.samples[channel.name] += 1

    def status(self, channel) -> None:
        if channel.status == "fault":
            self.faults[channel.name] += 1


class LivedashCollector(Collector):
    def __init__(self, livedash):
        self.livedash = livedash

    def collect(self) -> Iterator[Metric]:
        livedash, counts = self.livedash, self.livedash.counts
        channels = list(livedash.hub.channels.values())
        now = time.monotonic()

        value = GaugeMetricFamily("livedash_channel_value", "The channel's last sample, in its unit.",
                                  labels=["channel", "unit"])
        age = GaugeMetricFamily("livedash_channel_last_sample_age_seconds", "Time since the channel's last sample.",
                                labels=["channel"])
        samples = CounterMetricFamily("livedash_channel_samples", "Samples taken since start.", labels=["channel"])
        faults = CounterMetricFamily("livedash_channel_faults", "Times the channel went into fault since start.",
                                     labels=["channel"])
        status = GaugeMetricFamily("livedash_channel_status", "1 for the channel's current status.",
                                   labels=["channel", "status"])
        rate = GaugeMetricFamily("livedash_channel_rate_hz", "The channel's configured rate.", labels=["channel"])
        level = GaugeMetricFamily("livedash_channel_level", "1 for the channel's current level (channels with limits).",
                                  labels=["channel", "level"])
        for c in channels:
            last = c.pending[-1] if c.pending else (c.samples[-1] if c.samples else None)
            if last is not None:
                value.add_metric([c.name, c.config.unit], last.value)
            if c.last_at is not None:
                age.add_metric([c.name], now - c.last_at)
            samples.add_metric([c.name], counts.samples[c.name])
            faults.add_metric([c.name], counts.faults[c.name])
            for s in STATUSES:
                status.add_metric([c.name, s], float(c.status == s))
            rate.add_metric([c.name], c.config.rate_hz)
            if c.config.limits.any:
                for name in LEVELS:
                    level.add_metric([c.name, name], float(c.levels.level == name))
        yield from (value, age, samples, faults, status, rate, level)

        yield GaugeMetricFamily("livedash_clients", "Pages connected now.", value=len(livedash.hub.clients))
        yield GaugeMetricFamily("livedash_send_backlog", "Packets queued for the pages, all clients together.",
                                value=livedash.send_backlog())
        fanout = livedash.fanout.health()
        yield GaugeMetricFamily("livedash_broadcast_backlog_bytes", "Live frames waiting for pages whose socket is full.",
                                value=fanout["backlog_bytes"])
        yield GaugeMetricFamily("livedash_clients_behind", "Pages with live frames waiting in their backlog.",
                                value=fanout["clients_behind"])
        yield GaugeMetricFamily("livedash_hub_backlog", "Samples posted and not yet taken by the hub.",
                                value=livedash.hub.backlog())
        if livedash.started_at is not None:
            yield GaugeMetricFamily("livedash_uptime_seconds", "Time since start.", value=now - livedash.started_at)

        link = livedash.mqtt
        if link is None:
            return
        state = GaugeMetricFamily("livedash_mqtt_state", "1 for the broker connection's current state.",
                                  labels=["state"])
        for s in LINK_STATES:
            state.add_metric([s], float(link.state == s))
        yield state
        yield CounterMetricFamily("livedash_mqtt_published", "Messages handed to the broker.", value=link.published_count)
        yield CounterMetricFamily("livedash_mqtt_dropped", "Messages dropped: queue full while the broker was away.",
                                  value=link.dropped)
        yield GaugeMetricFamily("livedash_mqtt_queued", "Messages waiting for the broker.", value=link.queued)
        yield CounterMetricFamily("livedash_mqtt_received", "Messages received for mqtt channels.", value=link.received)
        yield CounterMetricFamily("livedash_mqtt_connects", "Successful connections to the broker.", value=link.connects)


def registry_for(livedash) -> CollectorRegistry:
    """A registry of this app's own (never prometheus_client's global one): ours, and the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LivedashCollector(livedash))
    ProcessCollector(registry=registry)  # CPU seconds, resident memory, open files, from /proc
    return registry
