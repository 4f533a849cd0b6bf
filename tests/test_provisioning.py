"""The real playbook against real booted systems, from a clone, as a user runs it.

The matrix: Debian 12 and 13 on amd64, and Debian 13 on arm64 (the Pi's architecture, through
qemu-user), booted with systemd as PID 1. Each guest is provisioned twice (the second run
changes nothing), checked with --check --diff (nothing to do), and serves its page and /healthz
to a viewer on the LAN (its own namespace, over a veth pair); 32-bit is refused with its reason.
Everything comes up in parallel threads, once per module; the deeper tests (kill -9, the
watchdog, a reboot, privacy, ports, a late failure) run on one guest. Each system's figures are
printed at the end of the run.

Defaults throughout: nothing is overridden for the guests but where pip finds its wheels
(they have no PyPI); the kiosk skips itself there, as on any system without a display console.
The arm64 guest's Debian units get one drop-in (tests/support/guest.py, EMULATED_DROPINS):
qemu-user cannot import their credentials; livedash's units use none and run as shipped.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.checkout import build_wheel, copy_checkout
from tests.support.guest import LITE_PACKAGES, QEMU_ARCHES, Guest, emulator_version, root_tarball
from tests.support.playbook import ANSIBLE_PLAYBOOK, recap, run as provision
from tests.support.server import REPO, wait_until

# The systems livedash is tested on, slowest first, so it starts first (the README lists
# exactly these). The arm64 one runs emulated: its root builds in about 3 minutes and each
# playbook run takes 1.5 to 3 minutes on a 2-core machine, against 15 to 30 s on amd64.
# Not bookworm arm64: under qemu-user its systemd 252 cannot give a service a network
# namespace (hostnamed: "Failed to set up network namespacing: Input/output error", so the
# playbook's hostname step times out) nor load credentials (sysusers, tmpfiles).
SYSTEMS = ["trixie-arm64", "bookworm-amd64", "trixie-amd64"]
DEEP = "bookworm-amd64"  # the guest the deeper tests run on
MODE_MISMATCH = "already exists but the mode is different"
# 32-bit Raspberry Pi OS's userland as Debian has it (armhf): only enough for Ansible to look.
THIRTY_TWO_BIT = ("trixie", "armhf", ["python3"])
ARTIFACTS = REPO / "test-artifacts" / "provisioning"  # each run's output, to read when one fails

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

FETCH = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=10).read().decode())"


def playbook(guest, checkout, *args):
    """`./scripts/provision ARGS` as a user runs it in their clone, defaults but the hostname."""
    return provision(guest, *args, checkout=checkout, base_hostname="livedash-test")


def fetch(guest, path):
    return guest.viewer_run(["python3", "-c", FETCH, f"http://{guest.address}{path}"], timeout=60).stdout


def service(guest, prop, unit="livedash"):
    return guest.run(["systemctl", "show", "-P", prop, unit]).stdout.strip()


@dataclass
class Provisioned:
    """One guest of the matrix and what its runs showed."""

    system: str
    guest: Guest
    runs: dict = field(default_factory=dict)  # first, second, check: CompletedProcess
    seconds: dict = field(default_factory=dict)  # rootfs (built or unpacked), boot, first, second, check
    page: str = ""
    health: dict = field(default_factory=dict)
    exposure: str = ""
    mode_warnings: list = field(default_factory=list)
    machine: str = ""  # uname -m inside the guest

    def figures(self) -> str:
        second = recap(self.runs["second"].stdout)["changed"] if "second" in self.runs else "-"
        s = {k: f"{v:.0f} s" for k, v in self.seconds.items()}
        emulated = f"  (qemu-user {emulator_version()})" if self.guest.arch in QEMU_ARCHES else ""
        return (f"{self.system:15} rootfs {s.get('rootfs', '-'):>6}  boot {s.get('boot', '-'):>5}  "
                f"first run {s.get('first', '-'):>6}  "
                f"re-run {s.get('second', '-'):>6} (changed={second})  check {s.get('check', '-'):>6}  "
                f"exposure {self.exposure or '-'}{emulated}")


def bring_up(system, workdir, checkout, keep_running):
    """Boot one guest and provision it as a user would, twice, then --check --diff; read what a
    LAN viewer sees. Every step is timed. Failures are left for that guest's test to report."""
    suite, arch = system.split("-")
    started = time.monotonic()
    guest = Guest(workdir, name="livedash-test", suite=suite, arch=arch, packages=LITE_PACKAGES)
    up = Provisioned(system, guest)
    try:
        guest.prepare(REPO / "requirements.txt")
        up.seconds["rootfs"] = time.monotonic() - started
        started = time.monotonic()
        guest.boot(timeout=300)
        up.seconds["boot"] = time.monotonic() - started
        for name, args in (("first", ()), ("second", ()), ("check", ("--check", "--diff"))):
            started = time.monotonic()
            up.runs[name] = playbook(guest, checkout, *args)
            up.seconds[name] = time.monotonic() - started
            (ARTIFACTS / f"{system}-{name}.log").write_text(up.runs[name].stdout + up.runs[name].stderr)
            if up.runs[name].returncode != 0:
                return up
        up.machine = guest.run(["uname", "-m"]).stdout.strip()
        up.page = fetch(guest, "/")
        up.health = json.loads(fetch(guest, "/healthz"))
        security = guest.run(["systemd-analyze", "security", "--no-pager", "livedash.service"]).stdout
        up.exposure = security.strip().splitlines()[-1].split(":", 1)[1].strip()
        journal = guest.run(["journalctl", "--no-pager", "-b"]).stdout
        up.mode_warnings = [l for l in journal.splitlines() if MODE_MISMATCH in l]
    finally:
        if not keep_running:
            guest.__exit__(None, None, None)
    return up


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A clone of the work tree as it is now, which every guest is provisioned from."""
    return copy_checkout(tmp_path_factory.mktemp("clone") / "livedash")


@pytest.fixture(scope="module")
def wheel(checkout):
    """The app's wheel, built once before the guests' runs would each build it at the same time."""
    return build_wheel(checkout)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, checkout, wheel, figures):
    """Every system of the matrix, brought up in parallel; a future per system."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pool = ThreadPoolExecutor(max_workers=len(SYSTEMS) + 1)
    futures = {system: pool.submit(bring_up, system, tmp_path_factory.mktemp(system), checkout, system == DEEP)
               for system in SYSTEMS}
    futures["32-bit"] = pool.submit(root_tarball, *THIRTY_TWO_BIT)
    yield futures
    for system in SYSTEMS:
        up = futures[system].result()
        figures.append(up.figures())
        if system == DEEP:
            up.guest.__exit__(None, None, None)
    pool.shutdown()


@pytest.fixture(scope="module")
def deep(matrix):
    up = matrix[DEEP].result()
    assert up.runs.get("check") is not None and up.runs["check"].returncode == 0, f"{DEEP} was not provisioned"
    return up.guest


def viewer_samples(guest):
    result = guest.viewer_run([sys.executable, "-c", VIEWER, f"http://{guest.address}/"], timeout=60)
    count, channel = result.stdout.split()
    return int(count), channel


def test_the_service_runs_as_its_user_and_feeds_the_lan_live(deep):
    assert service(deep, "ActiveState") == "active"
    assert service(deep, "User") == "livedash"
    count, channel = viewer_samples(deep)
    assert count >= 2 and channel == "random", "a LAN viewer receives live samples"
    status = deep.run(["systemctl", "status", "livedash", "--no-pager"], check=False).stdout
    assert "Status: \"1 channel ok, " in status
    logs = deep.run(["journalctl", "-u", "livedash", "-o", "json", "--no-pager"]).stdout
    assert any(json.loads(l).get("SYSLOG_IDENTIFIER") == "livedash" for l in logs.splitlines())


def test_config_and_state_are_private(deep):
    listing = deep.run(["stat", "-c", "%a %U %G %n", "/etc/livedash", "/etc/livedash/livedash.toml",
                        "/var/lib/livedash"]).stdout.split("\n")
    assert listing[0] == "750 root livedash /etc/livedash"
    assert listing[1] == "640 root livedash /etc/livedash/livedash.toml"
    assert listing[2] == "700 livedash livedash /var/lib/livedash"


def test_the_app_is_the_installed_wheel_and_nothing_else(deep):
    assert deep.run(["ls", "/opt/livedash"]).stdout.split() == ["venv", "wheels"]
    assert len(deep.run(["ls", "/opt/livedash/wheels"]).stdout.split()) == 1


def test_nothing_listens_but_the_page(deep):
    tcp = deep.run(["ss", "-Htln"]).stdout.split("\n")
    ports = {line.split()[3].rsplit(":", 1)[1] for line in tcp if line.strip()}
    assert ports == {"80"}, tcp


def test_installed_unit_verifies(deep):
    result = subprocess.run(["systemd-analyze", "verify", f"--root={deep.root}", "livedash.service"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_an_unsupported_system_is_refused_early_with_a_reason(deep, checkout):
    refused = playbook(deep, checkout, "-e", '{"base_supported_architectures": ["aarch64"]}')
    assert refused.returncode != 0
    assert "livedash needs Raspberry Pi OS (or Debian) 12 or 13 on aarch64; this host runs Debian 12" in refused.stdout
    assert "on x86_64" in refused.stdout
    assert recap(refused.stdout)["changed"] == "0", "nothing was touched"


def test_livedash_units_use_no_credentials_so_the_emulated_guests_drop_in_leaves_them_as_shipped():
    """The arm64 guest clears ImportCredential= for every service (EMULATED_DROPINS); that must
    change nothing of ours, or the guest would test something other than what ships."""
    for unit in sorted((REPO / "systemd").glob("*.service")):
        keys = [line.split("=", 1)[0] for line in unit.read_text().splitlines() if "=" in line]
        assert not [k for k in keys if "Credential" in k], unit.name


def test_the_playbook_lints_clean_with_the_production_profile():
    lint = subprocess.run([str(Path(sys.executable).with_name("ansible-lint")), "--profile", "production"],
                          cwd=REPO / "provisioning", capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]


def test_kill_9_is_restarted(deep):
    pid, restarts = service(deep, "MainPID"), int(service(deep, "NRestarts"))
    deep.run(["kill", "-9", pid])
    wait_until(lambda: service(deep, "MainPID") not in ("0", pid) and service(deep, "ActiveState") == "active",
               timeout=30, what="livedash to come back after kill -9")
    assert int(service(deep, "NRestarts")) == restarts + 1


def test_a_frozen_service_is_restarted_by_the_watchdog(deep):
    pid = service(deep, "MainPID")
    deep.run(["kill", "-STOP", pid])
    wait_until(lambda: service(deep, "MainPID") not in ("0", pid) and service(deep, "ActiveState") == "active",
               timeout=60, interval=1, what="the watchdog to restart the frozen service")
    log = deep.run(["journalctl", "-u", "livedash", "--no-pager"]).stdout
    assert "Watchdog timeout" in log


def test_it_comes_back_after_a_reboot(deep):
    deep.reboot()
    wait_until(lambda: service(deep, "ActiveState") == "active", timeout=60, what="livedash after the reboot")
    count, _ = viewer_samples(deep)
    assert count >= 2
    journal = deep.run(["journalctl", "--no-pager", "-b"]).stdout
    assert MODE_MISMATCH not in journal


def test_a_run_that_fails_late_still_restarts_the_new_code(deep, tmp_path):
    """An update whose run fails after the app changed (here: a config typo, refused by the
    config's own check near the end) still restarts the service on the new code, and says so."""
    update = copy_checkout(tmp_path / "livedash")
    with open(update / "app" / "web.py", "a") as f:
        f.write("# an update\n")
    new_version = build_wheel(update).name.split("-")[1]
    assert json.loads(fetch(deep, "/healthz"))["version"] != new_version
    pid = service(deep, "MainPID")
    bad = {"livedash_channels": [{"name": "random", "source": "random", "rate_hz": -1}]}
    failed = playbook(deep, update, "-e", json.dumps(bad))
    assert failed.returncode != 0 and recap(failed.stdout)["failed"] == "1", failed.stdout[-3000:]
    assert "rate_hz" in failed.stdout, "the failure names the bad key"
    assert "RUNNING HANDLER [livedash : Restart livedash]" in failed.stdout
    wait_until(lambda: service(deep, "ActiveState") == "active" and service(deep, "MainPID") not in ("0", pid),
               timeout=60, what="livedash restarted on the new code")
    assert json.loads(fetch(deep, "/healthz"))["version"] == new_version


def test_32_bit_raspberry_pi_os_is_refused_with_the_reason_before_anything_changes(matrix, checkout, tmp_path):
    """The refusal needs no booted system, only a 32-bit userland to gather facts from: Ansible
    reaches an armhf root through chroot (qemu-user says armv7l, as a 32-bit Pi does)."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(matrix["32-bit"].result()), "-C", str(root)], check=True)
    inventory = tmp_path / "inventory"
    inventory.write_text(f"[livedash]\npi32 ansible_connection=community.general.chroot ansible_host={root} "
                         "ansible_python_interpreter=/usr/bin/python3\n")
    refused = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inventory), "site.yml"], cwd=checkout / "provisioning",
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0
    assert "this host runs Debian 13" in refused.stdout and "on armv7l" in refused.stdout, refused.stdout[-3000:]
    assert "32-bit Raspberry Pi OS is not supported: greenlet" in refused.stdout
    # Nothing ran but the facts and the system check (its include counts as ok): changed=0, nothing else ok.
    assert recap(refused.stdout, "pi32")["changed"] == "0" and recap(refused.stdout, "pi32")["ok"] == "2"


# Last in the module, and the emulated ones last: the deeper tests run while arm64 still provisions.
@pytest.mark.parametrize("system", sorted(SYSTEMS, key=lambda system: system.endswith("arm64")))
def test_each_system_is_provisioned_twice_checked_and_serves_the_lan(matrix, wheel, system):
    up = matrix[system].result()
    assert "boot" in up.seconds, f"{system} did not boot"
    for name in ("first", "second", "check"):
        run = up.runs[name]
        assert run.returncode == 0, f"{system}, {name} run:\n{run.stdout[-4000:]}{run.stderr[-2000:]}"
    assert recap(up.runs["second"].stdout)["changed"] == "0", up.runs["second"].stdout[-3000:]
    assert recap(up.runs["check"].stdout)["changed"] == "0", up.runs["check"].stdout[-3000:]
    assert "No display console here" in up.runs["first"].stdout, "the kiosk says why it is skipped"
    assert up.machine == {"amd64": "x86_64", "arm64": "aarch64"}[up.guest.arch]
    assert "livedash" in up.page and "socket.io.min.js" in up.page
    assert up.health["status"] == "ok" and up.health["async_mode"] == "eventlet"
    assert up.health["version"] == wheel.name.split("-")[1], "the Pi runs the code of this checkout"
    assert up.mode_warnings == [], "the unit and the playbook agree on /etc/livedash's mode"
    assert float(up.exposure.split()[0]) <= 3.0, up.exposure
