"""What livedash keeps in its state directory between runs.

On the Pi that is systemd's StateDirectory (/var/lib/livedash), readable only by the
service user. Files are written whole or not at all (temp file, fsync, rename), so a power
cut never leaves half a file behind.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def ensure_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_history(path: Path, snapshot: dict, clean: bool) -> None:
    """Write the rings so a restart resumes them (and their numbering) instead of starting blank.

    *clean* is true only for the save made while stopping: a file saved on the way (and then
    left by a crash or a power cut) may lag behind what pages were already sent.
    """
    ensure_dir(path.parent)
    data = {"version": 1, "saved_at": time.time(), "clean": clean, "channels": snapshot}
    write_atomically(path, json.dumps(data, separators=(",", ":")).encode())


def load_history(path: Path) -> dict:
    """What was saved last time (channels, saved_at, clean); a torn or foreign file is set aside
    with a warning, never fatal."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("channels"), dict):
            raise ValueError("not a livedash history file")
        if not isinstance(data.get("saved_at", 0), (int, float)):
            raise ValueError("saved_at is not a time")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        log.warning("history in %s could not be read (%s); set aside as %s, starting empty", path, e, aside.name)
        return {}
