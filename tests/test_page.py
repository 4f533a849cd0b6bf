"""The page in real headless Chromium (Debian's, driven by Playwright): live values, chart, badge, no CDN."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.server import REPO, ServerProcess, wait_until

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

ONE = """
[[channels]]
name = "random"
label = "Random"
source = "random"
rate_hz = 5
"""

THREE = """
[gpio]
pin_factory = "mock"

[[channels]]
name = "distance"
label = "Distance"
source = "distance"
rate_hz = 10

[[channels]]
name = "temperature"
label = "Temperature"
source = "adc"
scale_from = [0.5, 1.5]
scale_to = [0.0, 100.0]
unit = "°C"
decimals = 1
display_min = 10
display_max = 40
rate_hz = 2

[[channels]]
name = "light"
label = "Light"
source = "light"
pin_factory = "lgpio"
rate_hz = 2
"""


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        # Debian's chromium, never a browser download; QUIC off: it would try the internet.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-quic", "--no-sandbox"])
        yield b
        b.close()


def open_page(browser, url, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    return page, requests


def values(page, name):
    return page.evaluate(f"(window.livedash.channels.get('{name}') || {{samples: []}}).samples.map(s => s.seq)")


def no_scrollbars(page):
    return page.evaluate("""() => {
        const e = document.documentElement;
        return e.scrollHeight <= innerHeight && e.scrollWidth <= innerWidth;
    }""")


@pytest.mark.parametrize("config, size", [(ONE, (800, 480)), (ONE, (1920, 1080)),
                                          (THREE, (800, 480)), (THREE, (1920, 1080))],
                         ids=["one-800x480", "one-1920x1080", "three-800x480", "three-1920x1080"])
def test_page_shows_live_values_and_chart_without_scrollbars(browser, tmp_path, config, size):
    with ServerProcess(tmp_path, config) as server:
        # 1m: every channel here keeps that much raw (the chart draws samples, not buckets)
        page, requests = open_page(browser, server.url + "/?window=1m", *size)
        first = page.locator(".card").first
        wait_until(lambda: page.locator("#connection").get_attribute("data-state") == "live", what="the live badge")
        assert page.evaluate("window.livedash.socket.io.engine.transport.name") == "websocket"
        name = first.get_attribute("data-channel")
        before = first.locator(".value").inner_text()
        wait_until(lambda: first.locator(".value").inner_text() not in ("–", before), timeout=5, what="a new value")
        wait_until(lambda: first.locator(".recent li").count() >= 3, what="the recent list")
        # The chart drew the samples it holds, oldest first (it redraws each time the window has
        # moved by a pixel, so the newest few may not be on it yet).
        def drawn():
            return page.evaluate(f"""() => {{
                const ch = window.livedash.channels.get('{name}');
                const ys = ch.plot.data[1].filter(v => v !== null);
                return [ys.length, ch.samples.length, ch.plot.width, ch.plot.height,
                        ys.every((y, i) => y === ch.samples[i].value)];
            }}""")
        wait_until(lambda: drawn()[0] >= 3, what="the chart drawn")
        d = drawn()
        assert 3 <= d[0] <= d[1] and d[4] and d[2] > 100 and d[3] > 50, d
        if config is THREE:
            wait_until(lambda: page.locator("[data-channel=light] .fault-reason").is_visible(), what="the fault")
            assert "No module named 'lgpio'" in page.locator("[data-channel=light] .fault-reason").inner_text()
            assert page.locator("[data-channel=temperature] .unit").inner_text() == "°C"
        assert no_scrollbars(page), "scrollbars at %sx%s" % size
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"page-{'three' if config is THREE else 'one'}-{size[0]}x{size[1]}.png"))
        outside = [u for u in requests if not u.startswith(server.url + "/") and not u.startswith("data:")]
        assert outside == [], f"requests left 127.0.0.1: {outside}"
        page.close()


def test_page_survives_a_server_restart_without_duplicates_or_gaps(browser, tmp_path):
    server = ServerProcess(tmp_path, ONE).start()
    page, _ = open_page(browser, server.url + "/?kiosk=1", 800, 480)
    try:
        wait_until(lambda: len(values(page, "random")) >= 5, what="samples")
        assert page.evaluate("getComputedStyle(document.body).cursor") == "none"
        server.stop()
        wait_until(lambda: page.locator("#connection").get_attribute("data-state") == "reconnecting",
                   what="the reconnecting badge")
        wait_until(lambda: page.locator("[data-channel=random] .stale").is_visible(), what="the stale marker")
        server.start()
        wait_until(lambda: page.locator("#connection").get_attribute("data-state") == "live", timeout=15,
                   what="live again")
        n = len(values(page, "random"))
        wait_until(lambda: len(values(page, "random")) >= n + 5, what="samples after the restart")
        assert not page.locator("[data-channel=random] .stale").is_visible()
        seqs = values(page, "random")
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no duplicates, no gaps"
    finally:
        page.close()
        server.stop()


def test_vendored_files_are_the_ones_recorded():
    """Every script and stylesheet the page loads is in static/vendor, as VERSIONS.md lists it."""
    check = subprocess.run(["bash", "scripts/vendor-assets.sh", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 5
    page = (REPO / "templates" / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
