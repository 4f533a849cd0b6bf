"""The kiosk unit's own command line, run headless: cage's headless backend instead of a screen.

It reads ExecStart= and Environment= from systemd/livedash-kiosk.service (not a copy of
them), overrides only where the server is, and adds what a test needs: Chromium's remote
debugging on loopback, and cage rotated twice so that grim's screenshots are fresh (cage
0.1.4 redraws a rotated output). It runs as a throwaway unprivileged user: cage refuses root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.server import REPO, free_port, wait_until

UNIT = REPO / "systemd" / "livedash-kiosk.service"
INSTALLED = {"/usr/local/libexec/livedash-kiosk": REPO / "systemd" / "livedash-kiosk"}  # as the kiosk role installs it
USER = "ldkiosk-test"


def unit_settings(unit: Path = UNIT) -> tuple[list[str], dict[str, str]]:
    """ExecStart= as a command and Environment= as a dict, as systemd reads them."""
    command, environment = None, {}
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            command = value.split()
        elif key == "Environment":
            name, _, val = value.partition("=")
            environment[name] = val
    command[0] = str(INSTALLED.get(command[0], command[0]))
    return command, environment


def ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


class HeadlessKiosk:
    def __init__(self, workdir: Path, server_url: str):
        self.user = ensure_user()
        # Folders the kiosk user owns, outside pytest's root-only tmp tree (as /run/user/UID would be).
        self.workdir = Path(tempfile.mkdtemp(prefix="ldkiosk-"))
        self.runtime = self.workdir / "runtime"  # XDG_RUNTIME_DIR: cage's Wayland socket
        self.state = self.workdir / "kiosk"  # the unit's RuntimeDirectory
        self.debug_port = free_port()
        command, environment = unit_settings()
        environment.update({
            "LIVEDASH_KIOSK_URL": f"{server_url}/?kiosk=1",
            "LIVEDASH_KIOSK_HEALTH_URL": f"{server_url}/healthz",
            "LIVEDASH_KIOSK_ROTATION": "180",
            "LIVEDASH_KIOSK_EXTRA_ARGS": f"--remote-debugging-port={self.debug_port} --remote-debugging-address=127.0.0.1",
            "RUNTIME_DIRECTORY": str(self.state),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "HOME": self.user.pw_dir,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman", "WLR_LIBINPUT_NO_DEVICES": "1",
        })
        self.command, self.environment = command, environment
        self.log = workdir / "kiosk.log"  # the test's own folder: root writes it
        self.process: subprocess.Popen | None = None

    def start(self) -> "HeadlessKiosk":
        for folder in (self.runtime, self.state):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chown(folder, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.workdir, 0o755)
        self.process = subprocess.Popen(["runuser", "-u", USER, "--", *self.command], env=self.environment,
                                         stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    @property
    def cdp_url(self) -> str:
        return f"http://127.0.0.1:{self.debug_port}"

    def wait_for_browser(self, timeout: float = 60) -> None:
        import urllib.request

        def answering():
            if self.process.poll() is not None:
                raise RuntimeError(f"the kiosk exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.cdp_url + "/json/version", timeout=1).read()
                return True
            except OSError:
                return False
        wait_until(answering, timeout=timeout, what="Chromium's remote debugging")

    def wayland_display(self) -> str:
        sockets = [p.name for p in self.runtime.glob("wayland-*") if not p.name.endswith(".lock")]
        return sockets[0]

    def screenshot(self, path: Path) -> None:
        subprocess.run(["runuser", "-u", USER, "--", "grim", "-"], check=True,
                       env={"XDG_RUNTIME_DIR": str(self.runtime), "WAYLAND_DISPLAY": self.wayland_display(),
                            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                       stdout=open(path, "wb"))

    def browser_pids(self) -> list[int]:
        """Chromium's browser process: the chromium child of cage (not its renderers)."""
        out = subprocess.run(["pgrep", "-u", USER, "-x", "chromium"], capture_output=True, text=True).stdout.split()
        pids = [int(p) for p in out]
        return [p for p in pids if "--type=" not in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]

    def cage_running(self) -> bool:
        return subprocess.run(["pgrep", "-u", USER, "-x", "cage"], capture_output=True).returncode == 0

    def stop(self) -> None:
        for pid in self.browser_pids():
            os.kill(pid, signal.SIGTERM)  # SIGTERM to cage 0.1.4 aborts it; Chromium's exit ends cage
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        subprocess.run(["pkill", "-KILL", "-u", USER], check=False)
        time.sleep(0.2)
        shutil.rmtree(self.workdir, ignore_errors=True)
