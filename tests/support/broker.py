"""A real Mosquitto (Debian's) for tests: foreground, loopback, a free port, a password file.

As a broker on a Pi would be set up (the mosquitto role): no anonymous clients, users from
a password file made with ``mosquitto_passwd``. ``persistence false``: a restart forgets
every retained message, which is what a test of reconnection wants to see handled.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from tests.support.server import free_port, wait_until

MOSQUITTO = "/usr/sbin/mosquitto"


def certificates(workdir: Path) -> dict[str, Path]:
    """A CA of the test's own and a certificate it signed for 127.0.0.1 (openssl), and a CA that signed nothing."""
    paths = {name: workdir / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key", "other-ca", "other-key")}
    for ca, key in (("ca", "ca-key"), ("other-ca", "other-key")):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        f"/CN=livedash test {ca}", "-keyout", str(paths[key]), "-out", str(paths[ca])],
                       check=True, capture_output=True)
    csr = workdir / "server.csr"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(paths["server-key"]), "-out", str(csr)], check=True, capture_output=True)
    extensions = workdir / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(paths["ca"]), "-CAkey", str(paths["ca-key"]),
                    "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(paths["server"])],
                   check=True, capture_output=True)
    return paths


class Broker:
    def __init__(self, workdir: Path, users: dict[str, str], tls: dict[str, Path] | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.users = users
        passwords = workdir / "passwd"
        passwords.touch(mode=0o600)
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (f"certfile {tls['server']}\nkeyfile {tls['server-key']}\n" if tls else "")
            + "allow_anonymous false\n"
            f"password_file {passwords}\n"
            "persistence false\n"
            # Run as root it would switch to the mosquitto user, who cannot read the test's files.
            "user root\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self.log_path = workdir / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=self._log,
                                        stderr=subprocess.STDOUT)
        wait_until(self._listening, timeout=10, what=f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self.process.returncode}:\n{self.output()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
            self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Watcher:
    """A real MQTT client that keeps every message on the topics it subscribes to, retained ones too."""

    def __init__(self, broker: Broker, user: str | None = None, *topics: str):
        self.messages: list[tuple[str, bytes, bool]] = []  # (topic, payload, retained)
        self.lock = threading.Lock()
        self.connack: Any = None
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        if user is not None:
            self.client.username_pw_set(user, broker.users[user])
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.topics = topics or ("#",)
        self.broker = broker

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            for topic in self.topics:
                client.subscribe(topic, qos=1)
        self.connack = reason_code

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def connect(self) -> "Watcher":
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None, what="the broker's answer")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.on(topic) if p]

    def last(self, topic: str) -> bytes | None:
        got = self.on(topic)
        return got[-1] if got else None

    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()


def retained(broker: Broker, user: str, topic: str) -> dict[str, bytes]:
    """What the broker holds retained under *topic* now (a fresh subscriber's view)."""
    with Watcher(broker, user, topic) as w:
        # Retained messages come right after the subscription's acknowledgement; a marker
        # published after subscribing arrives after them all.
        marker = f"livedash-test/marker/{time.monotonic_ns()}"
        w.client.subscribe(marker, qos=1)
        wait_until(lambda: w.client.publish(marker, b"1", qos=1) and w.on(marker), timeout=10,
                   interval=0.2, what="the marker")
        with w.lock:
            return {t: p for t, p, r in w.messages if r}
