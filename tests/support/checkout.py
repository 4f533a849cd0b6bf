"""What a fresh clone of this work tree holds: the files git tracks, as they are now (so a test
of the playbook or the wheel runs the code under test, edits included, and nothing untracked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.server import REPO



def copy_checkout(dest: Path) -> Path:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    for name in tracked.decode().split("\0"):
        source = REPO / name
        if name and (source.is_file() or source.is_symlink()):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)
    return dest


def build_wheel(checkout: Path) -> Path:
    """The wheel the playbook installs, built as the playbook builds it."""
    built = subprocess.run([sys.executable, str(checkout / "scripts" / "build-wheel"), str(checkout)],
                           check=True, capture_output=True, text=True)
    return Path(built.stdout.strip())
