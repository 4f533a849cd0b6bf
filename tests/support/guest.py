"""A real booted Debian system standing in for the Pi: systemd as PID 1, its own network.

Any of the systems a Pi runs: Debian 12 (bookworm) or 13 (trixie), amd64 or arm64 (the
Pi's own architecture, run through qemu-user and binfmt; see EMULATOR). The root file system
is built with mmdebstrap from the mirror this machine's own apt uses (read at run time, never
written into the repo), cached as a tarball per suite and architecture, and unpacked afresh
for each run. systemd-nspawn boots it in a network namespace of its own, joined to a second
namespace (the "LAN viewer") by a veth pair. Tests reach the guest's services only from the
viewer namespace, and run Ansible against it through its leader process (nsenter).

The guest has no way out to the internet. Everything the playbook installs with apt is in
the root file system already (so apt finds it installed), and the app's Python packages come
from a wheelhouse this machine downloads from PyPI and copies in.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

CACHE = Path(os.environ.get("LIVEDASH_TEST_CACHE", "/var/cache/livedash-test"))
WHEELS_IN_GUEST = "/var/cache/livedash-wheels"

# What a freshly flashed Raspberry Pi OS Lite has, plus what the playbook installs where the
# kiosk skips itself (no display console, as in any guest).
LITE_PACKAGES = [
    "systemd-sysv", "dbus", "udev", "kmod", "procps", "iproute2", "sudo", "ca-certificates",
    "python3", "python3-apt", "python3-packaging", "python3-venv", "python3-systemd",
    "avahi-daemon", "tzdata",
]
# What the kiosk role installs, for a guest that runs the kiosk (on the headless backend).
KIOSK_PACKAGES = [
    "cage", "xwayland", "chromium", "fonts-dejavu-core", "wlr-randr",
    "grim",  # the test's own: it screenshots the kiosk from inside the guest
]
PACKAGES = LITE_PACKAGES + KIOSK_PACKAGES

# The systems a Pi runs, as (suite, Debian architecture): the Python each has, and the
# wheel platform pip downloads for it.
PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
WHEEL_PLATFORMS = {
    "amd64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "arm64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"],
}
QEMU_ARCHES = {"arm64": "aarch64", "armhf": "arm"}  # architectures this machine runs only through qemu-user

# The emulator arm64 guests boot under: Debian's qemu-user from this suite (11.1 when written),
# fetched once into the cache and registered with binfmt_misc ahead of the system's while the
# tests run. A booted trixie (systemd 257) needs more than Debian 12's qemu-user 7.2 or Debian
# 13's 10.0 give: clone() with CLONE_PIDFD (7.2 refuses it: "Failed to spawn executor", no
# service starts) and a statx() that reports mount IDs (10.0 leaves them 0, so systemd takes a
# service's new root for the old one and every unit with ProtectSystem= or PrivateTmp=, the
# app's own among them, fails with 226/NAMESPACE).
EMULATOR = {"suite": "trixie-backports", "package": "qemu-user", "binary": "qemu-aarch64",
            "name": "livedash-aarch64"}
# An aarch64 ELF executable, as Debian's qemu-user registers it (/usr/lib/binfmt.d/qemu-aarch64.conf).
AARCH64_MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
AARCH64_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
# The one override an emulated guest gets, for Debian's own units (journald, sysusers, tmpfiles,
# udev...): systemd 257 imports their credentials in a child cloned with CLONE_NEWNS, which
# qemu-user refuses, so they fail with 243/CREDENTIALS. No livedash unit uses credentials
# (tests/test_provisioning.py checks), so ours run exactly as shipped.
EMULATED_DROPINS = {"service.d/livedash-test-qemu-user.conf":
                    "# qemu-user cannot clone(CLONE_NEWNS), which importing credentials needs.\n"
                    "[Service]\nImportCredential=\n"}
_emulator_lock = threading.Lock()
_emulator_registered = threading.Event()  # set once this process has registered EMULATOR


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(cmd, **kwargs)


def mirror_uris() -> tuple[str, list[str]]:
    """This machine's own Debian mirror and security mirrors, from its deb822 apt sources."""
    uris = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uris += [line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("URIs:")]
    main = [u for u in uris if not u.rstrip("/").endswith("-security")]
    security = [u for u in uris if u.rstrip("/").endswith("-security")]
    if not main:
        raise RuntimeError("no Debian mirror in this machine's apt sources to build the guest from")
    return main[0], security


def mirrors(suite: str) -> list[str]:
    """This machine's own Debian mirrors, as mmdebstrap lines for *suite*."""
    main, security = mirror_uris()
    return ([f"deb {main} {suite} main", f"deb {main} {suite}-updates main"]
            + [f"deb {u} {suite}-security main" for u in security[:1]])


def emulator_binary() -> Path:
    """EMULATOR's qemu-aarch64, from Debian's package, fetched once into the cache by an apt of
    its own (its own sources, lists and archive folders: this machine's apt is left as it is)."""
    folder = CACHE / f"{EMULATOR['package']}-{EMULATOR['suite']}"
    binary = folder / EMULATOR["binary"]
    if binary.exists():
        return binary
    apt = CACHE / f"apt-{EMULATOR['suite']}"
    for sub in ("lists/partial", "archives/partial"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(f"deb {mirror_uris()[0]} {EMULATOR['suite']} main\n")
    options = ["-o", f"Dir::Etc::SourceList={apt / 'sources.list'}", "-o", "Dir::Etc::SourceParts=-",
               "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt}",
               "-o", "APT::Sandbox::User=root", "-q"]
    run(["apt-get", *options, "update"])
    for partial in apt.glob("*.deb"):
        partial.unlink()
    run(["apt-get", *options, "download", f"{EMULATOR['package']}/{EMULATOR['suite']}"], cwd=apt)
    unpacked = CACHE / f"{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(unpacked, ignore_errors=True)
    deb = next(apt.glob("*.deb"))
    run(["dpkg-deb", "-x", str(deb), str(unpacked)])
    deb.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (unpacked / "usr/bin" / EMULATOR["binary"]).rename(binary)
    shutil.rmtree(unpacked)
    return binary


def emulator_version() -> str:
    """The emulator's version as it gives it, e.g. 11.1.3."""
    return run([str(emulator_binary()), "--version"]).stdout.split()[2]


def register_emulator(binfmt: Path) -> None:
    """Run aarch64 binaries through EMULATOR until this process ends: binfmt_misc tries the entry
    registered last first, so the system's own qemu-aarch64 comes back when ours is removed.
    F (the kernel opens the emulator now) lets it run inside a guest's own mount namespace; P
    keeps argv[0], as Debian's registration does."""
    with _emulator_lock:
        if _emulator_registered.is_set():
            return
        entry = binfmt / EMULATOR["name"]
        if entry.exists():  # left by a run that was killed
            entry.write_text("-1")
        (binfmt / "register").write_text(
            f":{EMULATOR['name']}:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{emulator_binary()}:POF")
        atexit.register(lambda: entry.exists() and entry.write_text("-1"))
        _emulator_registered.set()


def lower_priority(arch: str) -> list[str]:
    """A command prefix for work that runs emulated, which costs ten times the CPU of native work:
    at a lower priority it fills what the rest of the suite leaves, and the native guests'
    timings stay theirs."""
    return ["nice", "-n", "10"] if arch in QEMU_ARCHES else []


def can_run(arch: str) -> None:
    """Make sure this machine runs *arch* binaries (binfmt_misc and qemu-user), or say why not."""
    if arch not in QEMU_ARCHES:
        return
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        mounted = run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=False)
        if not (binfmt / "status").exists():  # not mounted by another guest's build meanwhile either
            raise RuntimeError(f"cannot mount binfmt_misc for {arch} binaries: {mounted.stderr.strip()}")
    if not (binfmt / f"qemu-{QEMU_ARCHES[arch]}").exists():
        run(["update-binfmts", "--enable", f"qemu-{QEMU_ARCHES[arch]}"], check=False)
    if arch == "arm64":
        register_emulator(binfmt)
    check = run(["arch-test", arch], check=False)
    if check.returncode != 0:
        raise RuntimeError(f"this machine cannot run {arch} binaries: {check.stdout.strip()} {check.stderr.strip()}")


def root_tarball(suite: str = "bookworm", arch: str = "amd64", packages: list[str] = PACKAGES) -> Path:
    """The guest's root file system as a tarball, built once per suite, architecture and package list."""
    key = hashlib.sha256(" ".join(packages).encode()).hexdigest()[:12]
    tarball = CACHE / f"{suite}-{arch}-{key}.tar"
    can_run(arch)
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(f".partial-{os.getpid()}.tar")
        run([*lower_priority(arch), "mmdebstrap", "--variant=apt", f"--arch={arch}",
             f"--include={','.join(packages)}", suite, str(partial), *mirrors(suite)], capture_output=True)
        partial.rename(tarball)
    return tarball


def wheelhouse(requirements: Path, suite: str = "bookworm", arch: str = "amd64") -> Path:
    """The app's pinned packages as wheels for the guest's Python and architecture, fetched on
    this machine (the guest has no PyPI). Wheels only: a Pi must never compile a package."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    folder = CACHE / f"wheels-{PYTHON[suite]}-{arch}-{key}"
    if not folder.exists():
        partial = CACHE / f"wheels-{PYTHON[suite]}-{arch}-{key}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        abi = "cp" + PYTHON[suite].replace(".", "")
        platforms = [arg for p in WHEEL_PLATFORMS[arch] for arg in ("--platform", p)]
        run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", *platforms,
             "--python-version", PYTHON[suite], "--implementation", "cp", "--abi", abi,
             "-r", str(requirements), "-d", str(partial)])
        partial.rename(folder)
    return folder


_guests = itertools.count()


class Guest:
    """A booted Debian guest and a LAN viewer namespace; use as a context manager."""

    def __init__(self, workdir: Path, name: str = "livedash-test", subnet: int | None = None,
                 suite: str = "bookworm", arch: str = "amd64", packages: list[str] = PACKAGES):
        self.workdir = workdir
        self.suite, self.arch, self.packages = suite, arch, packages
        self.root = workdir / "root"
        self.name = name
        number = next(_guests)  # several guests may run in one test process
        tag = f"{os.getpid() % 10000}-{number}"
        self.guest_ns, self.lan_ns = f"ldg-{tag}", f"ldl-{tag}"
        subnet = subnet if subnet is not None else 100 + (os.getpid() + number) % 100
        self.address, self.viewer_address = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
        self.nspawn: subprocess.Popen | None = None
        self.nice = lower_priority(arch)  # for the guest and the playbook runs against it
        self.leader: int | None = None
        self.console = workdir / "console.log"

    # Building and booting.

    def prepare(self, requirements: Path, dropins: dict[str, str] | None = None) -> "Guest":
        """Unpack the root file system and the wheels, and make the LAN. The units run exactly as
        shipped; *dropins* ({"UNIT.d/NAME.conf": text}, under /etc/systemd/system) is for the one
        documented override a test may need (the kiosk's headless backend), and nothing else. An
        emulated guest also gets EMULATED_DROPINS, for Debian's own units."""
        self.root.mkdir(parents=True)
        run(["tar", "-xf", str(root_tarball(self.suite, self.arch, self.packages)), "-C", str(self.root)])
        wheels = self.root / WHEELS_IN_GUEST.lstrip("/")
        shutil.copytree(wheelhouse(requirements, self.suite, self.arch), wheels)
        # pip in the guest trusts what this machine trusts (a test-harness step, not the playbook's).
        for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy(crt, self.root / "usr/local/share/ca-certificates" / crt.name)
        emulated = EMULATED_DROPINS if self.arch in QEMU_ARCHES else {}
        for name, text in {**emulated, **(dropins or {})}.items():
            path = self.root / "etc/systemd/system" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self._make_lan()
        return self

    def _make_lan(self) -> None:
        for ns in (self.guest_ns, self.lan_ns):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "link", "add", "ldv-g", "netns", self.guest_ns, "type", "veth",
             "peer", "name", "ldv-l", "netns", self.lan_ns])
        for ns, dev, addr in ((self.guest_ns, "ldv-g", self.address), (self.lan_ns, "ldv-l", self.viewer_address)):
            run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    def boot(self, timeout: float = 60.0) -> "Guest":
        """Boot with systemd as PID 1 and wait until it says running (or degraded)."""
        self.nspawn = subprocess.Popen(
            [*self.nice, "systemd-nspawn", "--register=no", "--keep-unit", "--console=pipe", "-b", "-D", str(self.root),
             f"--network-namespace-path=/run/netns/{self.guest_ns}", f"--machine={self.name}",
             "--timezone=off"],  # else /etc/localtime is a bind mount and the playbook cannot set it
            stdin=subprocess.DEVNULL, stdout=open(self.console, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"the guest exited with {self.nspawn.returncode}: {self.console.read_text()[-2000:]}")
            children = run(["pgrep", "-P", str(self.nspawn.pid)], check=False).stdout.split()
            if children:
                self.leader = int(children[0])
                state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=timeout).stdout.strip()
                if state in ("running", "degraded"):
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"the guest did not finish booting in {timeout} s")

    def poweroff(self, timeout: float = 60.0) -> None:
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        self.run(["systemctl", "poweroff"], check=False)
        try:
            self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait()

    def reboot(self) -> None:
        """A reboot is a power-off and a boot of the same root, as on the Pi's next power-up."""
        self.poweroff()
        self.boot()

    # Reaching it.

    def run(self, cmd, **kwargs) -> subprocess.CompletedProcess:
        """Run *cmd* inside the guest, in all its namespaces."""
        return run(["nsenter", "-t", str(self.leader), "-a", *cmd], **kwargs)

    def viewer_run(self, cmd, **kwargs) -> subprocess.CompletedProcess:
        """Run *cmd* in the LAN viewer's namespace, the only place the guest's address is reached from."""
        return run(["ip", "netns", "exec", self.lan_ns, *cmd], **kwargs)

    def inventory(self, path: Path, **variables: str) -> Path:
        """An Ansible inventory naming this guest, reached through its leader process."""
        lines = ["[livedash]",
                 f"{self.name} ansible_connection=community.docker.nsenter ansible_nsenter_pid={self.leader} "
                 f"ansible_python_interpreter=/usr/bin/python3",
                 "[livedash:vars]"]
        lines += [f"{k}={v}" for k, v in variables.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    # Cleaning up, whatever happened.

    def __enter__(self) -> "Guest":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.poweroff(timeout=30)
        finally:
            for ns in (self.guest_ns, self.lan_ns):
                run(["ip", "netns", "delete", ns], check=False)
