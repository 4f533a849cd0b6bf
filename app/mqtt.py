"""MQTT: livedash's one connection to a broker, for publishing its channels and for mqtt channels.

paho-mqtt runs its network loop on its own native thread (``loop_start``), as the samplers
do: nothing of it runs in the event loop. It reconnects by itself, with a backoff from 1 s
doubling to 60 s, whether the broker was down at start or went away later; the service
starts and serves either way, and the pages and /healthz say "mqtt: disconnected" and why.

Publishing never makes the hub wait. The hub's pump tells the ``MqttLink`` of each sample
and status change (it is one of the hub's observers); that only puts a message on a bounded
queue. A native sender thread hands them to paho while connected. While the broker is away
the queue keeps the newest ``queue_size`` messages; older ones are dropped and counted.

Topics, under ``topic_prefix`` (livedash/<hostname>): ``<prefix>/<channel>`` each sample as
JSON ``{seq, t, value, unit}``, ``<prefix>/<channel>/status`` ``{status, reason}``,
``<prefix>/availability`` ``online`` or ``offline`` (also the last will, so a Pi that dies
is offline), all retained: a late subscriber gets the last value at once. Channels faster
than ``max_rate_hz`` publish the latest sample at that rate; the seq shows what was skipped.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import sys
import threading
from typing import Any, Iterable

import paho.mqtt.client as paho

from .config import ChannelConfig, MqttConfig
from .discovery import config_topic, node_id, sensor_config
from .hub import Channel, Hub, Link, Sample
from .mqtt_source import Feed
from .sensors import KINDS

log = logging.getLogger(__name__)

KEEPALIVE_S = 30  # a broker gone silent (not closed) is noticed within 1.5 times this
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60
STOP_FLUSH_S = 2.0  # at stop, how long the last messages and "offline" may take


PAHO_LOG = logging.getLogger(f"{__name__}.paho")
PAHO_LOG.setLevel(logging.WARNING)  # paho narrates every packet at debug
# Between a failed reconnect and the next, paho's loop says this at error level; the state
# change was logged already, once.
PAHO_LOG.addFilter(lambda record: not record.getMessage().startswith("Client is not connected"))


def default_prefix() -> str:
    return f"livedash/{socket.gethostname()}"


class MqttLink:
    """The broker connection of one app: publisher, discovery, and the mqtt channels' feeds."""

    def __init__(self, config: MqttConfig, channels: Iterable[ChannelConfig], hub: Hub):
        self.config = config
        self.hub = hub
        self.prefix = config.topic_prefix or default_prefix()
        self.node = node_id(self.prefix)
        self.availability_topic = f"{self.prefix}/availability"
        channels = list(channels)
        # Channels fed from the broker are not published back to it.
        self.published = {c.name: c for c in channels if not KINDS[c.source].fed}
        self.feeds = [Feed(c, hub.post) for c in channels if KINDS[c.source].fed]
        self.state, self.reason = "connecting", None
        self.published_count = 0
        self.dropped_queue = 0  # fell out of the full queue (counted in the pump)
        self.dropped_broker = 0  # refused by paho (connection lost as it was handed over; counted by the sender)
        self.connects = 0
        self.attempts = 0  # connections tried, refused or failed ones too
        self._interval_ms = {name: 1000.0 / config.max_rate_hz for name, c in self.published.items()
                             if c.rate_hz > config.max_rate_hz}
        self._due: dict[str, float] = {}  # channel -> t (ms) from which its next sample goes out
        self._queue: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._refused: str | None = None  # the broker's CONNACK refusal, kept over the disconnect after it
        self._client = self._make_client()
        self._sender = threading.Thread(target=self._send, name="livedash-mqtt-send", daemon=True)

    @property
    def dropped(self) -> int:
        return self.dropped_queue + self.dropped_broker

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def received(self) -> int:
        return sum(f.received for f in self.feeds)

    def _make_client(self) -> paho.Client:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"livedash-{self.node}"[:64],
                             protocol=paho.MQTTv311)
        client.suppress_exceptions = True  # a bug in a callback is logged, never ends paho's thread
        client.enable_logger(PAHO_LOG)
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(20)
        client.max_queued_messages_set(self.config.queue_size)  # paho's own queue (qos 1) is bounded too
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        for feed in self.feeds:
            for topic, handler in feed.subscriptions():
                client.message_callback_add(topic, lambda c, u, m, handler=handler: handler(m.payload))
        if self.config.discovery:
            client.message_callback_add(config_topic(self.config.discovery_prefix, self.node, "+"),
                                        self._on_discovered)
            client.message_callback_add(f"{self.config.discovery_prefix}/status", self._on_home_assistant)
        return client

    # Start and stop, from the app.

    def start(self) -> None:
        c = self.config
        if c.username:
            password = None
            if c.password_file:
                try:
                    with open(c.password_file, encoding="utf-8") as f:
                        password = f.read().strip()
                except OSError as e:
                    self._set_state("disconnected", f"cannot read password_file {c.password_file}: {e.strerror or e}")
                    return
            self._client.username_pw_set(c.username, password)
        if c.tls:
            self._client.tls_set(ca_certs=c.ca_file or None)
        self._sender.start()
        self._set_state("connecting", None)
        self._client.connect_async(c.host, c.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def stop(self) -> None:
        """Send what is queued, say offline (a clean stop is not a death: the will is not sent), disconnect.

        With the broker away nothing is waited for: what is queued is given up.
        """
        if self._connected.is_set() and self._sender.is_alive():
            self._put(None)  # after everything queued, and never blocking on a full queue
            self._sender.join(STOP_FLUSH_S)
        self._stopping.set()
        if self._connected.is_set():
            info = self._client.publish(self.availability_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(STOP_FLUSH_S)
            except (RuntimeError, ValueError):
                pass  # the connection went as we stopped: the broker sends the will instead
        self._client.disconnect()
        self._client.loop_stop()

    # The hub's observer: in the pump, so only a put on the queue, never a wait.

    def sample(self, channel: Channel, sample: Sample) -> None:
        name = channel.name
        if name not in self.published:
            return
        interval = self._interval_ms.get(name)
        if interval is not None:  # faster than max_rate_hz: the latest sample at that rate
            due = self._due.get(name, -float("inf"))
            if sample.t < due:
                return
            self._due[name] = due + interval if due + interval > sample.t else sample.t + interval
        self._put(("sample", name, sample))

    def status(self, channel: Channel) -> None:
        if channel.name in self.published:
            self._put(("status", channel.name, (channel.status, channel.reason)))

    def _put(self, item: tuple) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the oldest goes: the newest value matters most
                    self.dropped_queue += 1
                except queue.Empty:
                    pass

    # The sender thread.

    def _send(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            while not self._connected.wait(0.5):  # held until the broker is back
                if self._stopping.is_set():
                    return
            topic, payload = self._message(*item)
            info = self._client.publish(topic, payload, qos=self.config.qos, retain=True)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                self.published_count += 1
            else:
                self.dropped_broker += 1

    def _message(self, kind: str, name: str, data: Any) -> tuple[str, bytes]:
        if kind == "sample":
            body = {"seq": data.seq, "t": data.t, "value": data.value, "unit": self.published[name].unit}
            return f"{self.prefix}/{name}", json.dumps(body, separators=(",", ":")).encode()
        status, reason = data
        return f"{self.prefix}/{name}/status", json.dumps({"status": status, "reason": reason}).encode()

    # paho's callbacks, on paho's thread.

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.attempts += 1
        if reason_code.is_failure:
            refused_login = str(reason_code) in ("Bad user name or password", "Not authorized")
            hint = " (check [mqtt] username and password_file)" if refused_login else ""
            self._refused = f"broker refused the connection: {reason_code}{hint}"
            self._set_state("disconnected", self._refused)
            return  # paho closes the connection and tries again after its backoff
        self._refused = None
        self.connects += 1
        qos = self.config.qos
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        for feed in self.feeds:
            for topic, _ in feed.subscriptions():
                client.subscribe(topic, qos=qos)
        if self.config.discovery:
            self._publish_discovery()
        # The broker may have restarted and forgotten every retained status: say them again.
        for name in self.published:
            channel = self.hub.channels[name]
            self.status(channel)
        self._connected.set()
        self._set_state("connected", None)

    def _on_connect_fail(self, client, userdata) -> None:
        self.attempts += 1
        error = sys.exc_info()[1]  # paho calls this from inside its except clause
        reason = getattr(error, "strerror", None) or str(error) or "cannot connect"
        self._set_state("disconnected", f"cannot reach {self.config.host}:{self.config.port}: {reason}")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if self._stopping.is_set():
            return
        reason = self._refused or ("connection lost" if reason_code.is_failure else str(reason_code))
        self._set_state("disconnected", reason)

    def _publish_discovery(self) -> None:
        prefix, qos = self.config.discovery_prefix, self.config.qos
        for channel in self.published.values():
            payload = json.dumps(sensor_config(channel, self.prefix, qos))
            self._client.publish(config_topic(prefix, self.node, channel.name), payload, qos=qos, retain=True)
        # Entries of channels no longer in the config come back as retained messages: cleared there.
        self._client.subscribe(config_topic(prefix, self.node, "+"), qos=qos)
        self._client.subscribe(f"{prefix}/status", qos=qos)

    def _on_discovered(self, client, userdata, message) -> None:
        """A retained discovery entry of this node: one for a channel that is gone is cleared."""
        name = message.topic.split("/")[-2]
        if not message.payload or name in self.published:
            return
        qos = self.config.qos
        log.info("mqtt: channel %s is no longer configured: clearing its Home Assistant entry", name)
        client.publish(message.topic, b"", qos=qos, retain=True)
        for topic in (f"{self.prefix}/{name}", f"{self.prefix}/{name}/status"):
            client.publish(topic, b"", qos=qos, retain=True)

    def _on_home_assistant(self, client, userdata, message) -> None:
        """Home Assistant restarted (its birth message): it wants the discovery entries again."""
        if message.payload == b"online":
            self._publish_discovery()

    # State, for the pages, /healthz, the log and the metrics.

    def _set_state(self, state: str, reason: str | None) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason = state, reason
        broker = f"{self.config.host}:{self.config.port}"
        if state == "connected":
            log.info("mqtt: connected to %s, publishing under %s/", broker, self.prefix)
        elif state == "disconnected":
            log.warning("mqtt: disconnected from %s: %s (retrying)", broker, reason)
            for feed in self.feeds:
                feed.broker_lost(reason)
        self.hub.post_link(Link("mqtt", state, reason))

    def health(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason,
                "broker": f"{self.config.host}:{self.config.port}", "topic_prefix": self.prefix,
                "published": self.published_count, "dropped": self.dropped, "dropped_broker": self.dropped_broker, "queued": self.queued,
                "received": self.received, "refused_payloads": sum(f.refused for f in self.feeds),
                "connects": self.connects, "attempts": self.attempts}

    def summary(self) -> str:
        return f"mqtt: {self.state}" + (f": {self.reason}" if self.reason else "")
