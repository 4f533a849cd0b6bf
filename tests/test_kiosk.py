"""The kiosk as the Pi's screen shows it: the unit's own command line under cage's headless backend."""

import datetime
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.support.kiosk import HeadlessKiosk, expand, read_unit, role_settings, unit_settings
from tests.support.server import REPO, ServerProcess, free_port, wait_until

ARTIFACTS = REPO / "test-artifacts"

CHANNELS = """
[gpio]
pin_factory = "mock"

[[channels]]
name = "distance"
label = "Distance"
source = "distance"
rate_hz = 5

[[channels]]
name = "random"
label = "Random"
source = "random"
rate_hz = 2
"""


def kiosk_page(kiosk):
    p = sync_playwright().start()
    browser = p.chromium.connect_over_cdp(kiosk.cdp_url)
    page = browser.contexts[0].pages[0]
    return p, page


def test_the_unit_runs_cage_and_chromium_with_its_flags():
    command, environment = unit_settings()
    assert command[:6] == ["/usr/bin/cage", "-d", "--", "/usr/bin/chromium", "--ozone-platform=wayland", "--kiosk"]
    assert command[-1] == environment["LIVEDASH_KIOSK_URL"] == "http://127.0.0.1/?kiosk=1"
    for flag in ("--noerrdialogs", "--hide-crash-restore-bubble", "--disable-pinch", "--no-first-run",
                 "--user-data-dir=/run/livedash-kiosk/chromium", "--check-for-update-interval=31536000",
                 "--disable-background-networking"):
        assert flag in command
    assert all(word.startswith("--") for word in command[4:-1]), "a comment inside the command is skipped"
    # What the kiosk role writes for kiosk_rotation: 270 turns the picture three quarter turns.
    turned = expand(read_unit().commands("ExecStart")[0], {**environment, **role_settings(kiosk_rotation=270)})
    assert turned[:6] == ["/usr/bin/cage", "-d", "-r", "-r", "-r", "--"]


def test_one_rotation_setting_gives_each_cage_what_it_takes():
    """kiosk_rotation becomes -r flags for cage 0.1.4 and a wlr-randr transform for cage 0.1.5+."""
    for rotation, flags in ((0, ""), (90, "-r"), (180, "-r -r"), (270, "-r -r -r")):
        old = role_settings("0.1.4-4", kiosk_rotation=rotation)
        assert (old["LIVEDASH_KIOSK_ROTATE"], old["LIVEDASH_KIOSK_TRANSFORM"]) == (flags, "")
        new = role_settings("0.2.0-1", kiosk_rotation=rotation)
        assert (new["LIVEDASH_KIOSK_ROTATE"], new["LIVEDASH_KIOSK_TRANSFORM"]) == ("", str(rotation or ""))
    scheduled = role_settings("0.2.0-1", kiosk_screen_off_at="22:00", kiosk_screen_on_at="07:00")
    assert (scheduled["LIVEDASH_KIOSK_SCREEN_OFF_AT"], scheduled["LIVEDASH_KIOSK_SCREEN_ON_AT"]) == ("22:00", "07:00")


def kiosk_screen():
    """systemd/kiosk-screen as a module (it has no .py: it is installed as a command)."""
    loader = importlib.machinery.SourceFileLoader("kiosk_screen", str(REPO / "systemd" / "kiosk-screen"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("kiosk_screen", loader))
    loader.exec_module(module)
    return module


def test_the_schedule_has_the_screen_off_between_its_times():
    screen_on = kiosk_screen().screen_on
    at = datetime.time.fromisoformat
    overnight = [(t, screen_on(at(t), "22:00", "07:00")) for t in ("21:59", "22:00", "03:00", "06:59", "07:00", "12:00")]
    assert overnight == [("21:59", True), ("22:00", False), ("03:00", False), ("06:59", False), ("07:00", True),
                         ("12:00", True)]
    lunch = [(t, screen_on(at(t), "12:00", "13:30")) for t in ("11:59", "12:00", "13:29", "13:30")]
    assert lunch == [("11:59", True), ("12:00", False), ("13:29", False), ("13:30", True)]
    assert screen_on(at("03:00"), "", "")


def test_a_schedule_is_refused_on_cage_0_1_4_before_anything_changes(tmp_path):
    """This machine's cage is Debian 12's 0.1.4, which cannot switch its screen: the playbook's
    preflight refuses the schedule, in check mode against this machine, and changes nothing."""
    inventory = tmp_path / "inventory"
    inventory.write_text(f"[livedash]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    refused = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "site.yml", "--check",
         "-e", '{"kiosk_screen_off_at": "22:00", "kiosk_screen_on_at": "07:00"}'],
        cwd=REPO / "provisioning", capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "need cage 0.1.5 or later" in refused.stdout and "cage 0.1.4" in refused.stdout, refused.stdout[-2000:]
    recap = [line for line in refused.stdout.splitlines() if line.startswith("localhost ")][-1]
    assert " changed=0 " in recap and " failed=1 " in recap, recap


def test_the_wait_gives_up_only_when_told(tmp_path):
    """kiosk-wait keeps asking while nothing listens; with --timeout it says so and fails."""
    wait = [str(REPO / "systemd" / "kiosk-wait"), f"http://127.0.0.1:{free_port()}/healthz"]
    failed = subprocess.run([*wait, "--timeout", "1.5"], capture_output=True, text=True, timeout=30)
    assert failed.returncode == 1 and "did not answer in 1.5 s" in failed.stderr
    waiting = subprocess.Popen(wait, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        assert waiting.poll() is None, "without --timeout it waits for ever"
    finally:
        waiting.kill()
        waiting.wait()


def test_kiosk_started_before_the_server_waits_then_shows_live_values(tmp_path):
    server = ServerProcess(tmp_path, CHANNELS)
    kiosk = HeadlessKiosk(tmp_path, server.url).start()
    try:
        time.sleep(3)
        assert kiosk.process.poll() is None and not kiosk.cage_running(), "it waits for the server, no browser yet"
        started = time.monotonic()
        server.start()
        kiosk.wait_for_browser()
        p, page = kiosk_page(kiosk)
        try:
            wait_until(lambda: page.evaluate("document.querySelector('#connection')?.dataset.state") == "live",
                       timeout=30, what="the kiosk page to be live")
            first_paint_s = time.monotonic() - started
            value = page.locator("[data-channel=random] .value")
            seen = {value.inner_text()}
            wait_until(lambda: seen.add(value.inner_text()) or len(seen - {"–"}) >= 2, timeout=10,
                       what="values changing on the kiosk")
            assert page.url.endswith("/?kiosk=1")
            assert page.evaluate("getComputedStyle(document.body).cursor") == "none"
            assert page.evaluate("document.documentElement.scrollHeight <= innerHeight")
            assert "chrome-error" not in page.url
        finally:
            p.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "kiosk.png"
        time.sleep(1)
        kiosk.screenshot(shot)
        assert shot.stat().st_size > 10_000
        print(f"\nkiosk: server start to live page {first_paint_s:.1f} s; screenshot {shot}")

        # Chromium dies: cage exits with it, which is what lets systemd's Restart= bring it back.
        for pid in kiosk.browser_pids():
            os.kill(pid, 9)
        kiosk.process.wait(15)
        assert not kiosk.cage_running()
    finally:
        kiosk.stop()
        server.stop()


def test_a_kiosk_turned_a_quarter_on_cage_0_1_4_shows_the_page_in_portrait(tmp_path):
    """kiosk_rotation 90 as the role writes it for this machine's cage 0.1.4: one -r."""
    settings = role_settings(kiosk_rotation=90)
    server = ServerProcess(tmp_path, CHANNELS).start()
    try:
        with HeadlessKiosk(tmp_path, server.url, settings=settings) as kiosk:
            assert kiosk.start_command[:4] == ["/usr/bin/cage", "-d", "-r", "--"]
            with kiosk.page() as page:
                wait_until(lambda: page.evaluate("document.querySelector('#connection')?.dataset.state") == "live",
                           timeout=60, what="the turned kiosk page to be live")
                size = page.evaluate("[innerWidth, innerHeight]")
            ARTIFACTS.mkdir(exist_ok=True)
            shot = kiosk.screenshot(ARTIFACTS / "kiosk-bookworm-rotated.png")
            png = shot.read_bytes()
            width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            assert height > width and size == [width, height], (width, height, size)
            print(f"\ncage 0.1.4, -r: {width}x{height}, Chromium's window {size[0]}x{size[1]}; screenshot {shot}")
    finally:
        server.stop()
