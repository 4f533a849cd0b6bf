"""Running the real playbook against a guest, as `./scripts/provision` runs it in a user's clone.

Each test module says which clone and which variables; this says how the run is made and read,
once: the project's own ansible.cfg (the playbook's directory), an inventory naming the guest,
and pip pointed at the wheels copied into the guest (a guest has no PyPI).
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.guest import WHEELS_IN_GUEST, Guest
from tests.support.server import REPO

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
PIP_FROM_WHEELS = json.dumps({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELS_IN_GUEST}).replace(" ", "")


def inventory_value(value) -> str:
    """An inventory variable as Ansible reads it: strings as they are, the rest as JSON (no spaces)."""
    return value if isinstance(value, str) else json.dumps(value).replace(" ", "")


def run(guest: Guest, *args: str, checkout: Path = REPO, timeout: int = 1800,
        **variables) -> subprocess.CompletedProcess:
    """`ansible-playbook site.yml ARGS` from CHECKOUT's provisioning/, against GUEST."""
    variables = {"livedash_pip_environment": PIP_FROM_WHEELS, **variables}
    inventory = guest.inventory(guest.workdir / "inventory",
                                **{k: inventory_value(v) for k, v in variables.items()})
    return subprocess.run([*guest.nice, ANSIBLE_PLAYBOOK, "-i", str(inventory), "site.yml", *args],
                          cwd=checkout / "provisioning", capture_output=True, text=True, timeout=timeout)


def recap(output: str, host: str = "livedash-test") -> dict:
    """The PLAY RECAP line's counts for HOST: {'ok': '12', 'changed': '0', ...}."""
    line = [l for l in output.splitlines() if l.startswith(host + " ")][-1]
    return dict(field.split("=") for field in line.split(":", 1)[1].split())
