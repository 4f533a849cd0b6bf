"""The real playbook against a real booted Debian 12 system standing in for the Pi.

One guest serves the whole module: building it is the slow part (about a minute cold).
Clients reach the service only from the LAN viewer namespace, as a browser on the LAN would.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.guest import WHEELS_IN_GUEST, Guest
from tests.support.server import REPO, wait_until

PROVISIONING = REPO / "provisioning"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))

VIEWER = """
import socketio, sys, time
got = []
sio = socketio.Client(reconnection=False)
sio.on("sample", lambda s: got.append(s))
sio.connect(sys.argv[1], transports=["websocket"], wait_timeout=10)
time.sleep(3)
sio.disconnect()
print(len(got), got[-1]["channel"] if got else "")
"""


def playbook(guest, tmp_path, *args):
    inventory = guest.inventory(tmp_path / "inventory", base_hostname="livedash-test",
                                livedash_pip_environment=json.dumps({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELS_IN_GUEST}).replace(" ", ""))
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inventory), "site.yml", *args], cwd=PROVISIONING,
                          capture_output=True, text=True, timeout=900)


def recap(output):
    line = [l for l in output.splitlines() if l.startswith("livedash-test")][-1]
    return dict(field.split("=") for field in line.split(":", 1)[1].split())


def service(guest, prop):
    return guest.run(["systemctl", "show", "-P", prop, "livedash"]).stdout.strip()


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("guest")
    started = time.monotonic()
    with Guest(workdir).prepare(REPO / "requirements.txt").boot() as g:
        g.ready_s = time.monotonic() - started
        yield g


@pytest.fixture(scope="module")
def provisioned(guest, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ansible")
    started = time.monotonic()
    first = playbook(guest, tmp)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    print(f"\nguest ready in {guest.ready_s:.1f} s; first playbook run {time.monotonic() - started:.1f} s")
    return tmp


def viewer_samples(guest):
    result = guest.viewer_run([sys.executable, "-c", VIEWER, f"http://{guest.address}/"], timeout=60)
    count, channel = result.stdout.split()
    return int(count), channel


def test_the_service_serves_the_lan(guest, provisioned):
    assert service(guest, "ActiveState") == "active"
    assert service(guest, "User") == "livedash"
    page = guest.viewer_run(["python3", "-c", f"import urllib.request as u; print(u.urlopen('http://{guest.address}/', timeout=5).read().decode())"])
    assert "livedash" in page.stdout and "socket.io.min.js" in page.stdout
    health = json.loads(guest.viewer_run(["python3", "-c", f"import urllib.request as u; print(u.urlopen('http://{guest.address}/healthz', timeout=5).read().decode())"]).stdout)
    assert health["status"] == "ok" and health["async_mode"] == "eventlet"
    count, channel = viewer_samples(guest)
    assert count >= 2 and channel == "random", "a LAN viewer receives live samples"
    status = guest.run(["systemctl", "status", "livedash", "--no-pager"], check=False).stdout
    assert "Status: \"1 channel ok, " in status
    logs = guest.run(["journalctl", "-u", "livedash", "-o", "json", "--no-pager"]).stdout
    assert any(json.loads(l).get("SYSLOG_IDENTIFIER") == "livedash" for l in logs.splitlines())


def test_config_and_state_are_private(guest, provisioned):
    listing = guest.run(["stat", "-c", "%a %U %G %n", "/etc/livedash/livedash.toml",
                         "/var/lib/livedash"]).stdout.split("\n")
    assert listing[0] == "640 root livedash /etc/livedash/livedash.toml"
    assert listing[1] == "700 livedash livedash /var/lib/livedash"


def test_nothing_listens_but_the_page(guest, provisioned):
    tcp = guest.run(["ss", "-Htln"]).stdout.split("\n")
    ports = {line.split()[3].rsplit(":", 1)[1] for line in tcp if line.strip()}
    assert ports == {"80"}, tcp


def test_installed_unit_verifies(guest, provisioned):
    result = subprocess.run(["systemd-analyze", "verify", f"--root={guest.root}", "livedash.service",
                             "livedash-kiosk.service"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_a_second_run_changes_nothing(guest, provisioned):
    second = playbook(guest, provisioned)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)["changed"] == "0", second.stdout[-3000:]


def test_check_mode_with_diff_works_and_finds_nothing_to_do(guest, provisioned):
    check = playbook(guest, provisioned, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-3000:]
    assert recap(check.stdout)["changed"] == "0", check.stdout[-3000:]


def test_an_unsupported_system_is_refused_early_with_a_reason(guest, provisioned):
    refused = playbook(guest, provisioned, "-e", '{"base_supported_architectures": ["armv7l"]}')
    assert refused.returncode != 0
    assert "livedash needs Raspberry Pi OS (or Debian) 12 or 13 on armv7l; this host runs Debian 12" in refused.stdout
    assert "on x86_64" in refused.stdout
    assert recap(refused.stdout)["changed"] == "0", "nothing was touched"


def test_the_playbook_lints_clean_with_the_production_profile():
    lint = subprocess.run([str(Path(sys.executable).with_name("ansible-lint")), "--profile", "production"],
                          cwd=PROVISIONING, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]


def test_kill_9_is_restarted(guest, provisioned):
    pid, restarts = service(guest, "MainPID"), int(service(guest, "NRestarts"))
    guest.run(["kill", "-9", pid])
    wait_until(lambda: service(guest, "MainPID") not in ("0", pid) and service(guest, "ActiveState") == "active",
               timeout=30, what="livedash to come back after kill -9")
    assert int(service(guest, "NRestarts")) == restarts + 1


def test_a_frozen_service_is_restarted_by_the_watchdog(guest, provisioned):
    pid = service(guest, "MainPID")
    guest.run(["kill", "-STOP", pid])
    wait_until(lambda: service(guest, "MainPID") not in ("0", pid) and service(guest, "ActiveState") == "active",
               timeout=60, interval=1, what="the watchdog to restart the frozen service")
    log = guest.run(["journalctl", "-u", "livedash", "--no-pager"]).stdout
    assert "Watchdog timeout" in log


def test_it_comes_back_after_a_reboot(guest, provisioned):
    guest.reboot()
    wait_until(lambda: service(guest, "ActiveState") == "active", timeout=60, what="livedash after the reboot")
    count, _ = viewer_samples(guest)
    assert count >= 2


def kiosk(guest, prop):
    return guest.run(["systemctl", "show", "-P", prop, "livedash-kiosk"]).stdout.strip()


def test_the_kiosk_is_enabled_and_comes_back_when_chromium_dies(guest, provisioned):
    assert guest.run(["systemctl", "is-enabled", "livedash-kiosk"], check=False).stdout.strip() == "enabled"
    wait_until(lambda: guest.run(["pgrep", "-u", "kiosk", "-x", "chromium"], check=False).returncode == 0,
               timeout=60, what="Chromium in the guest's kiosk")
    restarts = int(kiosk(guest, "NRestarts"))
    browser = guest.run(["pgrep", "-o", "-u", "kiosk", "-x", "chromium"]).stdout.split()[0]
    guest.run(["kill", "-9", browser])
    wait_until(lambda: int(kiosk(guest, "NRestarts")) > restarts, timeout=30, what="systemd to restart the kiosk")
    wait_until(lambda: guest.run(["pgrep", "-u", "kiosk", "-x", "chromium"], check=False).returncode == 0,
               timeout=60, what="Chromium back in the kiosk")
