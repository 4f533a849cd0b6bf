"""The kiosk as the Pi's screen shows it: the unit's own command line under cage's headless backend."""

import os
import shutil
import subprocess
import time

from playwright.sync_api import sync_playwright

from tests.support.kiosk import HeadlessKiosk, expand, read_unit, unit_settings
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
    turned = expand(read_unit().commands("ExecStart")[0], {**environment, "LIVEDASH_KIOSK_ROTATE": "-r -r -r"})
    assert turned[:6] == ["/usr/bin/cage", "-d", "-r", "-r", "-r", "--"]


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
