"""Hostile and broken input, crashes and restarts, against a real server process.

After each bad thing, a well-behaved client must still receive every sample at full rate,
and the server's memory must stay flat.
"""

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.support.server import Recorder, ServerProcess, get_json, wait_until

FAST = """
[server]
save_interval_s = 1

[[channels]]
name = "fast"
source = "random"
rate_hz = 20
"""


def rss_mb(server):
    status = open(f"/proc/{server.process.pid}/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


class RawSocketIO:
    """A WebSocket spoken by hand, to send what no proper client would."""

    def __init__(self, port):
        import websocket  # websocket-client

        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                                              timeout=5)
        assert self.ws.recv().startswith("0{")  # Engine.IO open
        self.ws.send("40")
        # The channel list may come ahead of the connect acknowledgement; both come.
        assert any(self.ws.recv().startswith("40") for _ in range(5))

    def send(self, text=None, binary=None):
        if binary is not None:
            self.ws.send_binary(binary)
        else:
            self.ws.send(text)

    def alive(self):
        try:
            self.ws.send("2probe")  # an Engine.IO ping from the client side
            return True
        except Exception:
            return False


HOSTILE_INPUTS = [
    ("unknown Engine.IO packet", dict(text="9garbage")),
    ("broken JSON in an event", dict(text='42["subscribe", ')),
    ("an event that is not a list", dict(text='42{"no": "list"}')),
    ("an event name that is not text", dict(text="42[42, 1]")),
    ("an unknown namespace", dict(text="40/admin,")),
    ("binary where text is expected", dict(binary=b"\x00\xff\x00\xff" * 16)),
    ("an oversized message", dict(text='42["subscribe","' + "x" * 100_000 + '"]')),
    ("a subscribe flood", dict(text='42["subscribe","fast"]')),
    ("an unknown event", dict(text='42["set_rate",{"channel":"fast","rate_hz":200}]')),
]


def test_hostile_inputs_are_refused_and_everyone_else_is_served(tmp_path):
    with ServerProcess(tmp_path, FAST) as server, Recorder(server.url) as good:
        wait_until(lambda: len(good.samples("fast")) >= 10, what="samples for the good client")
        memory_before = rss_mb(server)
        for kind, payload in HOSTILE_INPUTS:
            bad = RawSocketIO(server.port)
            for _ in range(1000 if kind == "a subscribe flood" else 1):
                try:
                    bad.send(**payload)
                except Exception:
                    break  # the server may close a connection that breaks the protocol
            start = len(good.samples("fast"))
            wait_until(lambda: len(good.samples("fast")) >= start + 10, what=f"the good client served on after {kind}")
        assert good.client.connected
        seqs = [s["seq"] for s in good.samples("fast")]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "not one sample lost"
        memory_after = rss_mb(server)
        print(f"\nhostile battery: {len(HOSTILE_INPUTS)} kinds; the good client got {len(seqs)} samples, none lost; "
              f"server RSS {memory_before:.1f} -> {memory_after:.1f} MB")
        assert memory_after - memory_before < 15, "memory stays flat"
        assert get_json(server.url + "/healthz")["status"] == "ok"


def test_http_refuses_what_it_does_not_serve(tmp_path):
    with ServerProcess(tmp_path, FAST) as server:
        for path in ("/admin", "/console", "/api/history/..%2f..%2fetc", "/api/history/nope", "/static/../app/config.py"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(server.url + path, timeout=5)
            assert e.value.code == 404, path
            if path.startswith("/api/"):
                assert json.loads(e.value.read())["error"] == "not found"
        big = urllib.request.Request(server.url + "/socket.io/?EIO=4&transport=polling", data=b"x" * 200_000,
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(big, timeout=5)
        assert e.value.code in (400, 413)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(server.url + "/", data=b"x", method="POST"), timeout=5)
        assert e.value.code == 405


def test_a_slow_header_client_does_not_block_others(tmp_path):
    with ServerProcess(tmp_path, FAST) as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never finishes its headers
        assert get_json(server.url + "/healthz", timeout=5)["status"] == "ok"  # a blocked server times out
        slow.close()


def test_an_unauthenticated_lan_client_reaches_only_the_page_assets_health_api_and_socketio(tmp_path):
    from app import create_app
    from app.config import load

    path = tmp_path / "livedash.toml"
    path.write_text(FAST)
    app = create_app(load(str(path), environ={}, overrides={"server.state_dir": str(tmp_path / "state"),
                                                           "server.async_mode": "threading"}))
    routes = sorted((rule.rule, tuple(sorted(rule.methods - {"HEAD", "OPTIONS"}))) for rule in app.url_map.iter_rules())
    assert routes == [("/", ("GET",)), ("/api/channels", ("GET",)), ("/api/history/<name>", ("GET",)),
                      ("/api/history/<name>.csv", ("GET",)), ("/healthz", ("GET",)), ("/metrics", ("GET",)), ("/static/<path:filename>", ("GET",))]
    # ...and the Socket.IO endpoint, whose only client events are subscribe, unsubscribe and window.
    handlers = app.extensions["socketio"].server.handlers["/"]
    assert sorted(handlers) == ["*", "connect", "disconnect", "subscribe", "unsubscribe", "window"]


def test_sigkill_under_load_then_restart_resyncs_without_repeats(tmp_path):
    server = ServerProcess(tmp_path, FAST).start()
    before = Recorder(server.url).connect()
    wait_until(lambda: len(before.samples("fast")) >= 40, what="two seconds of samples (and a save)")
    server.stop(signal.SIGKILL)
    seen = {s["seq"]: s for s in before.samples("fast")}
    server.start()
    try:
        after = Recorder(server.url).connect()
        wait_until(lambda: len(after.samples("fast")) >= 5, what="samples after the restart")
        after.disconnect()
    finally:
        server.stop()
    history = after.of("history")[0]["samples"]
    for s in history:  # what survived the crash is exactly what was sent
        if s["seq"] in seen:
            assert seen[s["seq"]]["value"] == s["value"] and seen[s["seq"]]["t"] == s["t"]
    fresh = after.samples("fast")
    assert fresh[0]["seq"] > max(seen), "numbering jumped past everything the killed server sent"


def test_cross_origin_socketio_is_refused_by_default(tmp_path):
    import websocket

    with ServerProcess(tmp_path, FAST) as server:
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(url, origin="http://evil.example", timeout=5)
        assert e.value.status_code == 400
        same = websocket.create_connection(url, origin=server.url, timeout=5)
        assert same.recv().startswith("0{")
        same.close()


@pytest.fixture
def tiny_disk(tmp_path):
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(path):
    """Write to *path* until the disk is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full: that is the point
    finally:
        os.close(fd)


def test_a_full_disk_is_reported_not_fatal(tmp_path, tiny_disk):
    server = ServerProcess(tmp_path, FAST)
    server.state_dir = tiny_disk / "state"
    server.args = tuple(str(server.state_dir) if a == str(tmp_path / "state") else a for a in server.args)
    with server:
        fill(tiny_disk / "filler")
        wait_until(lambda: "No space left on device" in server.output(), what="a save to fail")  # every second
        assert get_json(server.url + "/healthz")["status"] == "ok"
        with Recorder(server.url) as client:
            wait_until(lambda: len(client.samples("fast")) >= 10, what="samples with a full disk")
    assert "could not save history" in server.output() and "No space left on device" in server.output()


@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_a_client_that_stops_reading_is_let_go_and_others_are_not_delayed(tmp_path, mode):
    config = """
[server]
client_timeout_s = 2

[[channels]]
name = "fast"
source = "random"
rate_hz = 200
"""
    with ServerProcess(tmp_path, config, args=("--async-mode", mode)) as server, Recorder(server.url) as good:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.send(f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        assert stalled.recv(64).startswith(b"HTTP/1.1 101")
        stalled.send(bytes([0x81, 0x82, 0, 0, 0, 0]) + b"40")  # a masked text frame: "40", then never a read
        wait_until(lambda: server.health()["clients"] == 2, what="both clients")
        memory = rss_mb(server)
        # It never reads: its buffers fill, its writes block, and after client_timeout_s it is dropped.
        wait_until(lambda: server.health()["clients"] == 1, timeout=30, interval=0.5, what="the stalled client to go")
        assert rss_mb(server) - memory < 10
        start = len(good.samples("fast"))
        wait_until(lambda: len(good.samples("fast")) >= start + 100, what="the reading client served on")
        seqs = [s["seq"] for s in good.samples("fast")]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "and lost nothing (its latency: ./bench/run)"
        stalled.close()


def closed_by_server(connection: socket.socket, within_s: float) -> bool:
    """Read until the server closes (whatever it says first, a 408 say); False on a timeout."""
    connection.settimeout(within_s)
    try:
        while connection.recv(4096):
            pass
        return True
    except socket.timeout:
        return False


@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_half_open_and_idle_connections_are_reaped(tmp_path, mode):
    """A connection that never finishes its request, one that never says anything, and a
    long-polling session that stops polling are all closed within client_timeout_s."""
    config = FAST.replace("[server]\n", "[server]\nclient_timeout_s = 2\n")
    with ServerProcess(tmp_path, config, args=("--async-mode", mode)) as server, Recorder(server.url) as good:
        half = socket.create_connection(("127.0.0.1", server.port))
        half.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        silent = socket.create_connection(("127.0.0.1", server.port))
        polling = f"{server.url}/socket.io/?EIO=4&transport=polling"
        sid = json.loads(urllib.request.urlopen(polling, timeout=5).read()[1:])["sid"]
        urllib.request.urlopen(urllib.request.Request(f"{polling}&sid={sid}", data=b"40", method="POST"), timeout=5)
        urllib.request.urlopen(f"{polling}&sid={sid}", timeout=5).read()  # the namespace joined; then silence
        wait_until(lambda: server.health()["clients"] == 2, what="the polling client counted")
        for connection in (half, silent):
            assert closed_by_server(connection, within_s=15)
        wait_until(lambda: server.health()["clients"] == 1, timeout=15, interval=0.25, what="the polling session reaped")
        start = len(good.samples("fast"))
        wait_until(lambda: len(good.samples("fast")) >= start + 10, what="the good client served on")
        half.close()
        silent.close()
