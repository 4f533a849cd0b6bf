"""The built wheel is the whole app: installed into a fresh venv and run from any directory, it
serves its page; and it is built the same way every time, so the playbook can tell new code from old."""

import subprocess
import sys
import zipfile

import pytest
import requests

from tests.support.checkout import build_wheel, copy_checkout
from tests.support.server import REPO, ServerProcess

ONE_RANDOM = """
[[channels]]
name = "random"
source = "random"
rate_hz = 5
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(copy_checkout(tmp_path_factory.mktemp("checkout")))


def test_the_wheel_carries_the_page(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for page_file in [p.relative_to(REPO).as_posix() for d in ("templates", "static") for p in (REPO / d).rglob("*")
                      if p.is_file()]:
        assert "app/" + page_file in names, f"{page_file} is missing from {wheel.name}"


def test_an_installed_wheel_serves_its_page_from_any_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Its dependencies as the Pi gets them: pinned by requirements.txt.
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel),
                    "-c", str(REPO / "requirements.txt")], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ServerProcess(tmp_path, ONE_RANDOM, command=(str(venv / "bin/livedash"),), cwd=elsewhere) as server:
        page = requests.get(server.url + "/", timeout=5)
        assert page.status_code == 200 and "socket.io.min.js" in page.text
        script = requests.get(server.url + "/static/vendor/socket.io.min.js", timeout=5)
        assert script.status_code == 200 and script.content == (REPO / "static/vendor/socket.io.min.js").read_bytes()
        assert server.health()["version"] == wheel.name.split("-")[1]


def test_the_same_sources_give_the_same_wheel_and_a_change_a_new_version(wheel, tmp_path):
    again = build_wheel(copy_checkout(tmp_path / "again"))
    assert again.name == wheel.name and again.read_bytes() == wheel.read_bytes()
    changed = copy_checkout(tmp_path / "changed")
    with open(changed / "app/web.py", "a") as f:
        f.write("# one more line\n")
    assert build_wheel(changed).name != wheel.name
