"""The kiosk unit's own commands, run headless: cage's headless backend instead of a screen.

``read_unit`` parses systemd/livedash-kiosk.service the way systemd does (continued lines,
comment lines inside them, quoting, Environment= and ExecStartPre=/ExecStart=/ExecStop=);
``expand`` substitutes $VAR and ${VAR} as systemd does when it runs a command. HeadlessKiosk
then runs those commands as systemd would for ``User=``: ExecStartPre= to completion first,
then ExecStart= (cage is the main process) and ExecStartPost=, ExecStop= with $MAINPID on stop.
Only this differs:

* where the server is: the scheme and host:port of LIVEDASH_KIOSK_URL and ..._HEALTH_URL
  (the unit's path and query stay);
* where the runtime directory is: /run/livedash-kiosk becomes a fresh 0700 folder under
  /tmp that the user owns, as RuntimeDirectory= would make it;
* who runs it: a throwaway unprivileged user (cage refuses root), created if missing;
* what a test needs: WLR_BACKENDS=headless (no screen), Chromium's remote debugging on a
  free loopback port (Playwright's connect_over_cdp), and, on an upright output, cage's
  ``-r -r``: cage 0.1.4 redraws only a transformed output, so without it grim's screenshots
  show a stale frame (a turned output, kiosk_rotation 90 or 270, is redrawn anyway).

/etc/livedash/kiosk.env (EnvironmentFile=) is not read: that is the Pi's, not the test's. A
test passes ``settings`` instead: what the role would write there (``role_settings`` renders
the role's own template).
Processes are found and ended by their ids (those whose environment carries this run's
marker), never by name or user: other runs may share the user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.support.server import REPO, free_port, wait_until

UNIT = REPO / "systemd" / "livedash-kiosk.service"
# Where provisioning/roles/kiosk installs the repo's scripts, for the commands that name them.
INSTALLED = {"/usr/local/libexec/livedash-kiosk-wait": REPO / "systemd" / "kiosk-wait",
             "/usr/local/libexec/livedash-kiosk-screen": REPO / "systemd" / "kiosk-screen"}
ROLE = REPO / "provisioning" / "roles" / "kiosk"
USER = "ldkiosk-test"
# What systemd gives a service with User= before the unit's own Environment= (Debian 12).
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HEADLESS = {"WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman", "WLR_LIBINPUT_NO_DEVICES": "1"}
MARKER = "LIVEDASH_KIOSK_TEST_RUN"


# Reading the unit.

@dataclass
class Unit:
    path: Path
    service: dict[str, list[str]] = field(default_factory=dict)  # [Service] key -> values, in order

    def values(self, key: str) -> list[str]:
        """A list setting's values; an empty assignment resets the list, as in systemd."""
        out: list[str] = []
        for value in self.service.get(key, []):
            out = [] if value == "" else out + [value]
        return out

    @property
    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for value in self.values("Environment"):
            for item in shlex.split(specifiers(value, self.path)):
                name, _, val = item.partition("=")
                env[name] = val
        return env

    def commands(self, key: str) -> list[list[str]]:
        """ExecStart=-style settings as word lists, unexpanded: $VAR is resolved at run time."""
        out = []
        for value in self.values(key):
            words = shlex.split(specifiers(value, self.path), posix=True)
            words[0] = words[0].lstrip("-@:+!")  # prefixes: none of ours changes a test run
            out.append(words)
        return out

    @property
    def runtime_directory(self) -> str | None:
        names = self.values("RuntimeDirectory")
        return f"/run/{names[0]}" if names else None


def read_unit(path: Path = UNIT) -> Unit:
    """[Service] settings as systemd's parser reads them (systemd.syntax(7)): a line ending in
    a backslash goes on in the next line, comment lines in between are skipped."""
    unit, section, pending = Unit(path), None, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith(("#", ";")) or (not line and pending is None):
            continue
        if pending is not None:
            line = pending + " " + line
            pending = None
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            unit.service.setdefault(key.strip(), []).append(value.strip())
    return unit


def specifiers(text: str, unit_path: Path) -> str:
    """The % specifiers a system unit may use here; anything else is an error to notice."""
    table = {"%": "%", "t": "/run", "n": unit_path.name, "N": unit_path.stem}
    return re.sub(r"%(.)", lambda m: table[m.group(1)], text)


def expand(words: list[str], env: dict[str, str]) -> list[str]:
    """systemd's substitution in Exec*= lines: a word that is just $NAME becomes the value
    split at whitespace (zero words if empty); ${NAME} is replaced inside a word; $$ is $."""
    out: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            out.extend(env.get(whole.group(1), "").split())
            continue
        word = re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                      lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), ""), word)
        out.append(word)
    return out


def unit_settings(unit: Path = UNIT) -> tuple[list[str], dict[str, str]]:
    """ExecStart= (expanded with the unit's own Environment=) and the Environment= dict."""
    u = read_unit(unit)
    env = u.environment
    return expand(u.commands("ExecStart")[0], env), env


# Running it.

def role_settings(cage_version: str = "0.1.4-4", **variables) -> dict[str, str]:
    """/etc/livedash/kiosk.env as the kiosk role writes it for *variables* on a host with this
    cage (Debian 12's by default), from the role's own template and defaults."""
    import jinja2
    import yaml

    values = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), **variables}
    values.update(ansible_managed="Ansible managed", kiosk_cage_version=cage_version,
                  livedash_port=80, kiosk_url="http://127.0.0.1:80/?kiosk=1",
                  kiosk_health_url="http://127.0.0.1:80/healthz",
                  kiosk_cage_manages_outputs=tuple(map(int, cage_version.split("-")[0].split("."))) >= (0, 1, 5))
    text = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True) \
        .from_string((ROLE / "templates" / "kiosk.env.j2").read_text()).render(values)
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def ensure_user(name: str = USER) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


def with_origin(url: str, origin: str) -> str:
    """url with its scheme and host:port taken from origin; path and query kept."""
    new = urlsplit(origin)
    return urlunsplit(urlsplit(url)._replace(scheme=new.scheme, netloc=new.netloc))


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class HeadlessKiosk:
    """The unit's commands under cage's headless backend; use as a context manager.

    start() returns at once, like `systemctl start --no-block`: ExecStartPre= runs first (the
    wait for the server), then ExecStart=. ``phase`` says where it is.
    """

    def __init__(self, workdir: Path, server_url: str, unit: Path = UNIT, user: str = USER,
                 settings: dict[str, str] | None = None):
        self.unit = read_unit(unit)
        self.user = ensure_user(user)
        self.run_id = uuid.uuid4().hex
        # Outside pytest's root-only tmp tree: the user must reach its runtime directory.
        self.scratch = Path(tempfile.mkdtemp(prefix="ldkiosk-"))
        os.chmod(self.scratch, 0o755)
        self.runtime = self.scratch / "run"  # stands in for /run/livedash-kiosk
        self.log = workdir / "kiosk.log"  # the test's folder: root writes it
        self.debug_port = free_port()
        env = {**self.unit.environment, **(settings or {})}  # EnvironmentFile= wins, as in systemd
        for name in ("LIVEDASH_KIOSK_URL", "LIVEDASH_KIOSK_HEALTH_URL"):
            env[name] = with_origin(env[name], server_url)
        self.environment = self._relocate({
            "PATH": PATH, "LANG": "C.UTF-8", "HOME": self.user.pw_dir, "USER": self.user.pw_name,
            "LOGNAME": self.user.pw_name, "SHELL": self.user.pw_shell,
            "RUNTIME_DIRECTORY": self.unit.runtime_directory or "",
            **env, **HEADLESS, MARKER: self.run_id})
        self.pre: subprocess.Popen | None = None  # the ExecStartPre= running now
        self.cage: subprocess.Popen | None = None  # ExecStart=: the main process
        self.cage_started: float | None = None  # time.time() when cage was spawned
        self.failed: str | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # The command lines, as they will run.

    def _relocate(self, value):
        runtime = self.unit.runtime_directory
        if isinstance(value, dict):
            return {k: self._relocate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._relocate(v) for v in value]
        return value.replace(runtime, str(self.runtime)) if runtime else value

    def command(self, words: list[str], extra_env: dict[str, str] | None = None) -> list[str]:
        argv = self._relocate(expand(words, {**self.environment, **(extra_env or {})}))
        argv[0] = str(INSTALLED.get(argv[0], argv[0]))
        return argv

    @property
    def start_pre_commands(self) -> list[list[str]]:
        return [self.command(words) for words in self.unit.commands("ExecStartPre")]

    @property
    def start_command(self) -> list[str]:
        """ExecStart= plus the test's bits: cage's -r -r if upright, Chromium's remote debugging port."""
        argv = self.command(self.unit.commands("ExecStart")[0])
        assert Path(argv[0]).name == "cage" and "--" in argv, argv
        if not self.environment.get("LIVEDASH_KIOSK_ROTATE"):
            argv[1:1] = ["-r", "-r"]
        argv.insert(len(argv) - 1, f"--remote-debugging-port={self.debug_port}")  # before the URL
        return argv

    # Life cycle.

    def _spawn(self, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            log.write(f"\n$ {shlex.join(argv)}\n".encode())
            log.flush()
            return subprocess.Popen(
                argv, env={**self.environment, **(extra_env or {})}, cwd="/",
                user=self.user.pw_uid, group=self.user.pw_gid,
                extra_groups=os.getgrouplist(self.user.pw_name, self.user.pw_gid),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> "HeadlessKiosk":
        # RuntimeDirectory=, RuntimeDirectoryMode=0700, owned by User=.
        self.runtime.mkdir(mode=0o700)
        os.chown(self.runtime, self.user.pw_uid, self.user.pw_gid)
        # Xwayland (which cage 0.1.4 must be able to start) needs /tmp/.X11-unix; the Pi's
        # systemd-tmpfiles makes it at boot (x11.conf), a bare test machine may not have.
        x11 = Path("/tmp/.X11-unix")
        if not x11.exists():
            os.mkdir(x11)
            os.chmod(x11, 0o1777)
        elif (x11.stat().st_mode & 0o1777) != 0o1777 and x11.stat().st_uid != self.user.pw_uid:
            raise RuntimeError(f"{x11} is not 1777 (nor the kiosk user's): cage could not start Xwayland")
        self._thread = threading.Thread(target=self._run_start, name="kiosk-start", daemon=True)
        self._thread.start()
        return self

    def _run_start(self) -> None:
        for argv in self.start_pre_commands:
            self.pre = self._spawn(argv)
            code = self.pre.wait()
            if code != 0 or self._stopping:
                self.failed = f"ExecStartPre {argv} exited with {code}"
                return
        if not self._stopping:
            self.cage_started = time.time()
            self.cage = self._spawn(self.start_command)
            # ExecStartPost= (its "-": a failure is logged, the kiosk runs on).
            for argv in [self.command(words) for words in self.unit.commands("ExecStartPost")]:
                code = self._spawn(argv).wait()
                if code != 0:
                    with open(self.log, "ab") as log:
                        log.write(f"ExecStartPost {argv} exited with {code} (ignored)\n".encode())

    @property
    def phase(self) -> str:
        if self.failed:
            return "failed"
        if self.cage is None:
            return "start-pre" if self._thread and self._thread.is_alive() else "inactive"
        return "running" if self.cage.poll() is None else "exited"

    @property
    def process(self) -> subprocess.Popen | None:
        """What runs now: the ExecStartPre= command, then cage."""
        return self.cage or self.pre

    def cage_running(self) -> bool:
        return self.phase == "running"

    def browser_pids(self) -> list[int]:
        """Chromium's browser process: cage's child (its renderers are the browser's children)."""
        if self.cage is None or self.cage.poll() is not None:
            return []
        return [pid for pid in children(self.cage.pid) if comm(pid) == "chromium"]

    @property
    def cdp_url(self) -> str:
        return f"http://127.0.0.1:{self.debug_port}"

    def wait_for_browser(self, timeout: float = 60) -> None:
        """Until Chromium answers on its remote debugging port."""
        def answering() -> bool:
            if self.phase in ("failed", "exited"):
                raise RuntimeError(f"the kiosk is {self.phase} ({self.failed or self.cage.returncode}): "
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            if self.phase != "running":
                return False
            try:
                with urllib.request.urlopen(self.cdp_url + "/json/version", timeout=1):
                    return True
            except OSError:
                return False
        wait_until(answering, timeout=timeout, interval=0.1, what="Chromium's remote debugging")

    @contextlib.contextmanager
    def page(self):
        """The kiosk's own tab, through Playwright's connect_over_cdp (disconnects after)."""
        from playwright.sync_api import sync_playwright

        self.wait_for_browser()
        with sync_playwright() as p:
            browser = p.chromium.connect_over_cdp(self.cdp_url)
            pages = wait_until(lambda: browser.contexts and browser.contexts[0].pages, timeout=10,
                               what="the kiosk's tab")
            yield pages[0]

    def first_paint_s(self, page) -> float | None:
        """Seconds from cage's spawn to the page's first contentful paint."""
        at = page.evaluate("""() => {
            const fcp = performance.getEntriesByName('first-contentful-paint')[0];
            return fcp ? performance.timeOrigin + fcp.startTime : null; }""")
        return None if at is None else at / 1000 - self.cage_started

    def wayland_display(self) -> str:
        """WAYLAND_DISPLAY as cage gave it to Chromium."""
        for pid in self.browser_pids():
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                if item.startswith(b"WAYLAND_DISPLAY="):
                    return item.split(b"=", 1)[1].decode()
        raise RuntimeError("no Chromium under cage to ask for WAYLAND_DISPLAY")

    def screenshot(self, path: Path) -> Path:
        """cage's output as a PNG, by grim as the kiosk user (a Wayland client of cage)."""
        display = self.wayland_display()
        with open(path, "wb") as out:
            subprocess.run(["grim", "-"], check=True, stdout=out, timeout=30,
                           env={"PATH": PATH, "XDG_RUNTIME_DIR": str(self.runtime), "WAYLAND_DISPLAY": display},
                           user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return path

    def kill_browser(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal Chromium's browser process; cage exits with it (what Restart= relies on).
        Returns cage's exit status."""
        pids = self.browser_pids()
        assert pids, "no Chromium under cage"
        for pid in pids:
            os.kill(pid, sig)
        return self.cage.wait(timeout)

    def stop(self, timeout: float | None = None) -> int | None:
        """As `systemctl stop` (the unit's ExecStop= with $MAINPID, then SIGTERM for what is
        left), then ends every process of this run and removes its folder, whatever state it
        is in. Returns cage's exit status (None if it never started)."""
        try:
            return self._systemctl_stop(timeout)
        finally:
            self._clean_up()

    close = stop

    def _systemctl_stop(self, timeout: float | None) -> int | None:
        self._stopping = True
        if self.pre is not None and self.pre.poll() is None:
            self.pre.terminate()
        if self._thread:
            self._thread.join(10)
        if self.cage is None:
            return None
        if self.cage.poll() is None:
            configured = self.unit.values("TimeoutStopSec") or ["90"]
            timeout = timeout or float(configured[-1].rstrip("s"))
            mainpid = {"MAINPID": str(self.cage.pid)}
            for words in self.unit.commands("ExecStop"):
                control = self._spawn(self.command(words, mainpid), mainpid)
                # systemd reaps the main process while ExecStop= runs: so must we, or a
                # `kill -0 $MAINPID` loop would see cage's zombie for ever.
                deadline = time.monotonic() + timeout
                while control.poll() is None and time.monotonic() < deadline:
                    self.cage.poll()
                    time.sleep(0.05)
                if control.poll() is None:
                    control.terminate()  # systemd too, once TimeoutStopSec= is over
                    control.wait(5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cage.wait(timeout)
            if self.cage.poll() is None:  # then the rest of the unit gets SIGTERM
                self.cage.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.cage.wait(timeout)
        return self.cage.returncode

    def ours(self) -> list[int]:
        """Every live process of this run: its environment carries the run's marker."""
        mark = f"{MARKER}={self.run_id}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if proc.stat().st_uid == self.user.pw_uid and mark in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
        return found

    def _clean_up(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.ours():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not self.ours(), timeout=5, what="the kiosk's processes to end")
        for proc in (self.pre, self.cage):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.scratch)], check=False)

    def __enter__(self) -> "HeadlessKiosk":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(timeout=10)
