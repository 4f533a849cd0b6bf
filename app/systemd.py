"""systemd glue: tell systemd the truth about readiness and health, and log to the journal.

Under systemd (``Type=notify``, ``WatchdogSec=``) the service says READY=1 once its port is
bound and its samplers run, keeps a STATUS= line a person reads in ``systemctl status``, and
sends WATCHDOG=1 only from the main loop and only while the loop, the hub and every sampler
are really alive: if any of them hangs, the pings stop and systemd restarts the service.
A sensor in fault is not a hang; it is shown, retried, and does not cost a restart.

systemd-python is optional (it needs libsystemd headers to build): on a laptop without it,
nothing here does anything and logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping

log = logging.getLogger(__name__)


def _systemd_module(name: str):
    try:
        return __import__(f"systemd.{name}", fromlist=[name])
    except ImportError:
        return None


class Notifier:
    """sd_notify through systemd-python, when systemd is listening (NOTIFY_SOCKET)."""

    def __init__(self, environ: Mapping[str, str] = os.environ):
        self._daemon = _systemd_module("daemon") if environ.get("NOTIFY_SOCKET") else None
        if environ.get("NOTIFY_SOCKET") and self._daemon is None:
            log.warning("NOTIFY_SOCKET is set but systemd-python is not installed: systemd will not hear READY=1")
        self.watchdog_s = _watchdog_interval(environ)
        self._status = None

    def send(self, *lines: str) -> None:
        if self._daemon is not None:
            self._daemon.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of what systemd asks (WATCHDOG_USEC), as sd_watchdog_enabled(3) advises; None if not asked."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None


def under_journald(environ: Mapping[str, str] = os.environ) -> bool:
    """True when stderr is the journal's stream, as systemd sets JOURNAL_STREAM for a service."""
    stream = environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def log_handler(environ: Mapping[str, str] = os.environ) -> logging.Handler:
    """journald with structured fields (a record's ``extra``, e.g. CHANNEL) under systemd; stderr otherwise."""
    journal = _systemd_module("journal") if under_journald(environ) else None
    if journal is not None:
        return journal.JournalHandler(SYSLOG_IDENTIFIER="livedash")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    return handler
