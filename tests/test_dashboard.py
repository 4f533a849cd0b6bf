"""The page as a dashboard (issue 12), in real headless Chromium against real servers: one time
window for every card, gaps drawn as gaps, levels with hysteresis, the export, readable sizes,
and the screenshots the README shows."""

import csv
import io
import json
import logging
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

from tests.support.server import REPO, RUNNING, InProcessServer, Recorder, ServerProcess, get_json, wait_until
from tests.test_page import CHROMIUM

DOCS = REPO / "docs"
SENSORS = (REPO / "examples" / "sensors.toml").read_text().replace('pin_factory = "auto"', 'pin_factory = "mock"')


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        # Debian's chromium, never a browser download; QUIC off: it would try the internet.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-quic", "--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def sensors(tmp_path_factory):
    """examples/sensors.toml on mock pins: four channels, simulated, one with limits."""
    with ServerProcess(tmp_path_factory.mktemp("sensors"), SENSORS) as server:
        yield shared(server)


def shared(server):
    """A server for the whole module: this fixture stops it, not conftest's check after each test."""
    RUNNING.discard(server)
    return server


def open_page(browser, url, width, height, **options):
    page = browser.new_page(viewport={"width": width, "height": height}, **options)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    wait_until(lambda: page.locator("#connection").get_attribute("data-state") == "live", what="the live badge")
    page.errors = errors
    return page


def x_ranges(page):
    return page.evaluate("""() => [...window.livedash.channels.values()].map(
        ch => [ch.info.name, ch.plot.scales.x.min, ch.plot.scales.x.max])""")


SMALL_TEXT = """() => {
    // Every visible text node on the screen, and the computed size of its element.
    const small = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node; (node = walker.nextNode());) {
        if (!node.textContent.trim()) continue;
        const el = node.parentElement;
        if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        const visible = [...range.getClientRects()].some(r => r.width > 0 && r.height > 0 &&
            r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth);
        if (!visible) continue;
        const px = parseFloat(getComputedStyle(el).fontSize);
        if (px < 18) small.push(`${el.tagName}.${el.className}: "${node.textContent.trim().slice(0, 20)}" ${px}px`);
    }
    return small;
}"""


def test_the_window_control_sets_every_charts_range(browser, sensors):
    page = open_page(browser, sensors.url + "/?window=1m", 800, 480)
    try:
        wait_until(lambda: page.locator(".card").count() == 4, what="four cards")
        assert page.locator("#window [aria-pressed=true]").inner_text() == "1m"
        for label, seconds in (("1m", 60), ("1h", 3600), ("24h", 86400), ("5m", 300)):
            page.locator(f"#window button[data-window='{label}']").click()
            # every card's x range is the window, and they end at the same moment
            wait_until(lambda: all(abs(hi - lo - seconds) < 1e-3 for _, lo, hi in x_ranges(page)),
                       what=f"every chart spanning {label}")
            ends = [hi for _, _, hi in x_ranges(page)]
            assert max(ends) - min(ends) < 2.0, ends
            assert f"window={label}" in page.url
            assert all(f".csv?window={label}" in href for href in
                       page.locator(".download").evaluate_all("links => links.map(a => a.href)"))
        # Distance (10 Hz, a 60 s raw ring) draws a 5 minute window from aggregates: a band.
        wait_until(lambda: page.evaluate("""() => {
            const ch = window.livedash.channels.get('distance');
            return ch.agg && ch.agg.width === 1000 && ch.plot.data[2].some(v => v !== null);
        }"""), what="the distance card's min-max band")
        assert page.evaluate("window.livedash.channels.get('random').plot.data[2].every(v => v === null)"), \
            "a 1 Hz channel's raw ring spans 5 minutes: raw samples, no band"
        assert page.errors == []
    finally:
        page.close()


def test_theme_follows_the_browser_unless_the_url_says(browser, sensors):
    for scheme, query, expected in (("light", "", "light"), ("dark", "", "dark"), ("light", "?theme=dark", "dark")):
        page = open_page(browser, sensors.url + "/" + query, 800, 480, color_scheme=scheme)
        try:
            assert page.evaluate("document.documentElement.dataset.theme") == expected
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert (background == "rgb(243, 245, 248)") == (expected == "light"), background
        finally:
            page.close()


RANDOM_5HZ = """
[server]
history = 1500  # 5 minutes at 5 Hz: the 5 minute window is raw, the hour aggregated

[[channels]]
name = "random"
label = "Random"
source = "random"
rate_hz = 5
"""

# The same channel, now reading a sensor that cannot open (no lgpio here): its saved history
# and aggregates are restored and stay still, so the page and the export can be compared exactly.
RANDOM_NOW_FAULTY = """
[server]
history = 1500

[gpio]
pin_factory = "mock"

[[channels]]
name = "random"
label = "Random"
source = "light"
pin_factory = "lgpio"
rate_hz = 5
"""


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    """Two runs of a 5 Hz channel with a pause of over 4 s between them, then the same state
    served by a run whose channel faults: history with a gap in it, and nothing new."""
    tmp = tmp_path_factory.mktemp("still")
    runs = []
    for i in range(2):
        server = ServerProcess(tmp, RANDOM_5HZ).start()
        wait_until(lambda: server.health()["channels"]["random"]["seq"] >= 10 * (i + 1), what="samples")
        server.stop()
        runs.append(json.loads((server.state_dir / "history.json").read_text())["channels"]["random"])
        if i == 0:
            time.sleep(4.5)  # the gap: longer than 3 per-second buckets
    with ServerProcess(tmp, RANDOM_NOW_FAULTY) as server:
        wait_until(lambda: server.health()["channels"]["random"]["status"] == "fault", what="the fault")
        server.runs = runs
        yield shared(server)


def test_a_gap_is_drawn_as_a_gap_raw_and_aggregated(browser, still):
    before = still.runs[0]["samples"][-1]["t"]
    after = next(s["t"] for s in still.runs[1]["samples"] if s["t"] > before)
    assert after - before > 4000
    page = open_page(browser, still.url + "/?window=5m", 800, 480)
    try:
        for window in ("5m", "1h"):
            page.locator(f"#window button[data-window='{window}']").click()
            wait_until(lambda: page.evaluate("""() => { const ch = window.livedash.channels.get('random');
                return (ch.agg || ch.info.raw_span_s >= 300) && ch.plot.data[0].length >= 5; }"""),
                       what=f"the chart at {window}")
            xs, ys = page.evaluate("(() => { const d = window.livedash.channels.get('random').plot.data;"
                                   " return [d[0], d[1]]; })()")
            # raw: between the two samples; aggregated: between their seconds' buckets (drawn at their middle)
            lo, hi = (before / 1000, after / 1000) if window == "5m" else (before // 1000 + 1, after // 1000)
            inside = [(x, y) for x, y in zip(xs, ys) if lo < x < hi]
            assert len(inside) == 1 and inside[0][1] is None, f"{window}: one null in the gap, no line: {inside}"
            assert sum(y is None for y in ys) == 1, f"{window}: no other gap"
            assert page.evaluate("uPlot && window.livedash.channels.get('random').plot.series[1].spanGaps") is False
        # a fault shows as a fault, not as a level
        assert page.locator("[data-channel=random] .fault-reason").is_visible()
        assert page.locator("[data-channel=random]").get_attribute("data-level") == "ok"
        assert page.errors == []
    finally:
        page.close()


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers, response.read().decode()


def test_the_csv_equals_the_json_and_the_card_links_to_it(browser, still):
    base = still.url + "/api/history/random"
    for window, kind in (("5m", "raw"), ("1h", "aggregates"), ("24h", "aggregates")):
        data = get_json(f"{base}?window={window}")
        assert data["kind"] == kind and data["window"] == window
        headers, text = fetch(f"{base}.csv?window={window}")
        assert headers["Content-Type"].startswith("text/csv")
        assert f'filename="livedash-random-{window}.csv"' in headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(text)))
        if kind == "raw":
            assert rows[0] == ["seq", "t", "value"]
            expected = [[s["seq"], s["t"], s["value"]] for s in data["samples"]]
            assert [[int(r[0]), float(r[1]), float(r[2])] for r in rows[1:]] == expected
            assert len(expected) >= 20
        else:
            assert rows[0] == ["t", "min", "max", "mean", "count"]
            expected = [[b["t"], b["min"], b["max"], b["mean"], b["count"]] for b in data["buckets"]]
            assert [[float(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4])] for r in rows[1:]] == expected
            assert sum(b["count"] for b in data["buckets"]) == len(get_json(base)["samples"]), \
                "every sample of both runs is in the restored aggregates"
            assert data["width_s"] == (1 if window == "1h" else 60)
    page = open_page(browser, still.url + "/?window=1h", 800, 480)
    try:
        href = page.locator("[data-channel=random] .download").get_attribute("href")
        assert href == "/api/history/random.csv?window=1h"
        with page.expect_download() as download:
            page.locator("[data-channel=random] .download").click()
        assert download.value.suggested_filename == "livedash-random-1h.csv"
        assert open(download.value.path()).read() == fetch(f"{base}.csv?window=1h")[1]
    finally:
        page.close()


@pytest.mark.parametrize("query, reason", [
    ("?since=abc", "since: expected a sequence number"),
    ("?since=-1", "since: expected a sequence number"),
    ("?window=2h", "window: expected one of 1m, 5m, 1h, 24h, got '2h'"),
    ("?window=", "window: expected one of"),
    ("?windw=1h", "unknown parameter 'windw'"),
    ("?window=1h&since=3", "since: only for raw samples"),
])
def test_bad_parameters_get_400_with_the_reason(still, query, reason):
    for suffix in ("", ".csv"):
        with pytest.raises(urllib.error.HTTPError) as e:
            fetch(f"{still.url}/api/history/random{suffix}{query}")
        assert e.value.code == 400
        assert reason in json.load(e.value)["detail"]


TEMP_WITH_LIMITS = """
[gpio]
pin_factory = "mock"
simulate = false

[[channels]]
name = "temp"
label = "Temperature"
source = "adc"
rate_hz = 10
scale_from = [0.5, 1.5]
scale_to = [0, 100]
unit = "°C"
decimals = 1
warn_above = 40
alarm_above = 50
hysteresis = 5
"""


def test_crossing_alarm_above_turns_the_card_to_alarm_and_back_after_the_hysteresis(browser, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="app.hub")
    with InProcessServer(TEMP_WITH_LIMITS, tmp_path) as server:
        pins = server.livedash.pins
        wait_until(lambda: pins.simulator and pins.simulator.mocks, what="the sampler to open its sensor")
        adc = pins.simulator.mocks[("adc", 11, 8)]
        adc.volts[0] = 0.75  # 25 °C
        page = open_page(browser, server.url + "/", 800, 480)
        card = page.locator("[data-channel=temp]")
        with Recorder(server.url) as client:
            def shows(value):  # (the mock chip has 10 bits: about 0.3 °C a step)
                wait_until(lambda: abs(float(card.locator(".value").inner_text().replace("–", "nan")) - value) < 0.6,
                           what=f"about {value} on the card")

            shows(25.0)
            assert card.get_attribute("data-level") == "ok" and card.locator(".level").inner_text() == "ok"
            adc.volts[0] = 1.1  # 60 °C: beyond alarm_above
            wait_until(lambda: card.get_attribute("data-level") == "alarm", what="the alarm")
            assert card.locator(".level").inner_text() == "ALARM"
            assert get_json(server.url + "/healthz")["channels"]["temp"]["level"] == "alarm"
            adc.volts[0] = 0.98  # 48 °C: under the limit, not yet by the hysteresis
            shows(48.0)
            assert card.get_attribute("data-level") == "alarm"
            adc.volts[0] = 0.94  # 44 °C: out of the alarm's hysteresis, still beyond warn_above
            shows(44.0)
            assert card.get_attribute("data-level") == "warn" and card.locator(".level").inner_text() == "warning"
            adc.volts[0] = 0.75
            shows(25.0)
            wait_until(lambda: card.get_attribute("data-level") == "ok", what="back to ok")
            assert get_json(server.url + "/healthz")["channels"]["temp"]["level"] == "ok"
            levels = [(e["level"], e["limit"]) for e in client.of("level")]
            assert levels == [("alarm", 50.0), ("warn", 40.0), ("ok", 40.0)]
            assert all(e["channel"] == "temp" and isinstance(e["value"], float) for e in client.of("level"))
        # the limits are drawn: the chart's y range holds them
        assert page.evaluate("window.livedash.channels.get('temp').plot.scales.y.max") >= 50
        assert page.errors == []
        page.close()
        crossings = [r for r in caplog.records if getattr(r, "LEVEL", None)]
        assert [(r.CHANNEL, r.LEVEL) for r in crossings] == [("temp", "alarm"), ("temp", "warn"), ("temp", "ok")], \
            "logged once per crossing, with the channel as a journald field"


@pytest.mark.parametrize("size", [(800, 480), (1920, 1080), (390, 844)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_screenshots_and_no_text_under_18px(browser, sensors, size):
    theme = "light" if size == (390, 844) else "dark"  # the README shows both themes
    # (last in the module: the sensors have been running for a while, the 1 minute window is full)
    page = open_page(browser, sensors.url + f"/?theme={theme}&window=1m", *size,
                     color_scheme="light" if theme == "light" else "dark")
    try:
        wait_until(lambda: page.locator(".card").count() == 4, what="four cards")
        wait_until(lambda: page.evaluate("[...window.livedash.channels.values()].every(ch => ch.samples.length >= 3)"),
                   timeout=15, what="samples on every card")
        wait_until(lambda: page.locator("[data-channel=temperature] .stats .mean").inner_text() != "–",
                   what="the stats")
        assert page.evaluate("document.documentElement.dataset.theme") == theme
        if size == (800, 480):
            assert page.evaluate(SMALL_TEXT) == []
            assert page.evaluate("document.documentElement.scrollHeight <= innerHeight")
            # the value is the biggest thing on the card
            value_px = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.value')).fontSize)")
            assert value_px >= 48, value_px
        if size == (390, 844):
            # the last values read down the columns: the second is under the first, not beside it
            # (in one look: the list is redrawn with every sample)
            a, b = page.evaluate("""[...document.querySelectorAll('[data-channel=distance] .recent li')].slice(0, 2)
                .map(li => { const r = li.getBoundingClientRect(); return {x: r.x, y: r.y}; })""")
            assert abs(a["x"] - b["x"]) < 1 and b["y"] > a["y"]
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / f"page-{size[0]}x{size[1]}.png"), full_page=size == (390, 844))
        assert page.errors == []
    finally:
        page.close()
