"""The kiosk on cage 0.2 (Debian 13, trixie, as current Raspberry Pi OS): provisioned by the
real playbook in a booted trixie guest, turned a quarter turn, its screen switched off and on
by the schedule's own units, then removed by livedash_kiosk: false.

The guest runs the installed units as shipped, but for ONE drop-in this module writes
(HEADLESS_DROPIN below): the guest has no screen and no tty1, so cage draws into wlroots'
headless backend, and the kiosk reads stdin from /dev/null rather than from tty1
(StandardInput=tty-fail would fail with 208/STDIN). For the same reason the playbook gets
kiosk_require_display=false: without it the role skips the kiosk on a host without a display
console, as it should. Screenshots are grim's, run inside the guest as the kiosk user (a
Wayland client of cage, like wlr-randr). Chromium's window is judged from them: it has no
remote debugging port, and giving it one would be a second override.
"""

import datetime
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.guest import PACKAGES, Guest
from tests.support.playbook import recap, run as provision
from tests.support.server import REPO, wait_until

ARTIFACTS = REPO / "test-artifacts"
RUNTIME = "/run/livedash-kiosk"

HEADLESS_DROPIN = """\
# Test harness only (tests/test_kiosk_trixie.py): this guest has no screen and no tty1.
[Service]
# Instead of StandardInput=tty-fail on TTYPath=/dev/tty1, which a guest without tty1 fails
# with 208/STDIN: stdin from /dev/null.
StandardInput=null
# Instead of the DRM screen: wlroots' headless backend, drawn by pixman, no input devices.
Environment=WLR_BACKENDS=headless WLR_RENDERER=pixman WLR_LIBINPUT_NO_DEVICES=1
"""

# The page's --bg and its "live" badge's --live (static/livedash.css), in each of its themes:
# the page follows the browser's colour scheme, and Chromium under cage, with no desktop to
# ask, prefers light. cage's own background is black.
THEMES = {"dark": ((0x0D, 0x11, 0x17), (0x3F, 0xB9, 0x50)), "light": ((0xF3, 0xF5, 0xF8), (0x1A, 0x7F, 0x37))}


def playbook(guest, *args, **variables):
    return provision(guest, *args, timeout=1200, base_hostname="livedash-test", kiosk_require_display="false",
                     **variables)


def cage_socket(guest) -> str | None:
    sockets = guest.run(["find", RUNTIME, "-maxdepth", "1", "-type", "s", "-name", "wayland-*"], check=False).stdout.split()
    return Path(sockets[0]).name if sockets else None


def as_kiosk(guest, *cmd, **kwargs):
    """A Wayland client of the guest's cage, as the kiosk user (cage's socket is theirs)."""
    display = cage_socket(guest)
    assert display, "cage has no Wayland socket: the kiosk is not running"
    return guest.run(["runuser", "-u", "kiosk", "--", "env", f"XDG_RUNTIME_DIR={RUNTIME}",
                      f"WAYLAND_DISPLAY={display}", *cmd], **kwargs)


def outputs(guest) -> dict[str, dict[str, str]]:
    """wlr-randr's outputs: name -> {"Enabled": "yes", "Transform": "90", ...}."""
    found, current = {}, None
    for line in as_kiosk(guest, "wlr-randr").stdout.splitlines():
        if line and not line[0].isspace():
            current = found.setdefault(line.split()[0], {})
        elif current is not None and ":" in line:
            key, _, value = line.strip().partition(":")
            current[key] = value.strip()
    return found


def grab(guest):
    """grim's picture of cage's output: (width, height, RGB bytes), or None when grim fails
    (or cage is not running)."""
    if cage_socket(guest) is None:
        return None
    shot = as_kiosk(guest, "grim", "-t", "ppm", "-", check=False, text=False)
    if shot.returncode != 0:
        return None
    header = re.match(rb"P6\s(\d+)\s(\d+)\s255\s", shot.stdout)  # one whitespace byte each: pixels may be too
    assert header, shot.stdout[:20]
    return int(header[1]), int(header[2]), shot.stdout[header.end():]


def pixel(image, x, y):
    width, _, pixels = image
    at = 3 * (y * width + x)
    return tuple(pixels[at:at + 3])


def near(a, b, tolerance=12):
    return all(abs(p - q) <= tolerance for p, q in zip(a, b))


def live_pixels(image, live):
    width, height, _ = image
    return sum(near(pixel(image, x, y), live, 30) for y in range(0, height, 2) for x in range(0, width, 2))


def shows_live_page(image) -> bool:
    """The page, live (its green badge), filling the whole output: every corner is the page's
    background, not cage's black around a smaller window."""
    if image is None:
        return False
    width, height, _ = image
    corners = [pixel(image, x, y) for x in (2, width - 3) for y in (height // 2, height - 3)]
    return any(all(near(c, background) for c in corners) and live_pixels(image, live) > 20
               for background, live in THEMES.values())


def save_png(guest, path):
    ARTIFACTS.mkdir(exist_ok=True)
    path.write_bytes(as_kiosk(guest, "grim", "-", text=False).stdout)
    return path


def kiosk(guest, prop):
    return guest.run(["systemctl", "show", "-P", prop, "livedash-kiosk"]).stdout.strip()


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trixie-kiosk")
    started = time.monotonic()
    with Guest(workdir, name="livedash-test", suite="trixie", arch="amd64", packages=PACKAGES) as g:
        g.prepare(REPO / "requirements.txt", dropins={"livedash-kiosk.service.d/headless-test.conf": HEADLESS_DROPIN})
        g.boot()
        g.ready_s = time.monotonic() - started
        yield g


@pytest.fixture(scope="module")
def schedule(guest):
    """Off and on times hours away from the guest's clock (UTC, base_timezone's default), so
    the kiosk starts with its screen on whatever the time of day: the test starts the
    schedule's units itself rather than waiting for a time."""
    now = datetime.datetime.strptime(guest.run(["date", "-u", "+%H:%M"]).stdout.strip(), "%H:%M")
    return {"kiosk_screen_off_at": (now + datetime.timedelta(hours=6)).strftime("%H:%M"),
            "kiosk_screen_on_at": (now + datetime.timedelta(hours=7)).strftime("%H:%M")}


@pytest.fixture(scope="module")
def provisioned(guest, schedule, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ansible")
    started = time.monotonic()
    first = playbook(guest, kiosk_rotation="90", **schedule)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    print(f"\ntrixie guest ready in {guest.ready_s:.1f} s; provisioned with the kiosk in {time.monotonic() - started:.1f} s")
    return tmp


def test_refused_settings_stop_the_run_before_anything_changes(guest, tmp_path):
    """On the fresh guest, where a run would change everything: nothing changed."""
    turned = playbook(guest, kiosk_rotation="45")
    assert turned.returncode != 0
    assert "kiosk_rotation must be 0, 90, 180 or 270 (degrees clockwise), not 45" in turned.stdout
    assert recap(turned.stdout)["changed"] == "0"
    late = playbook(guest, kiosk_screen_off_at="24:00", kiosk_screen_on_at="07:00")
    assert late.returncode != 0 and 'not "24:00" and "07:00"' in late.stdout
    assert recap(late.stdout)["changed"] == "0"
    assert guest.run(["test", "-e", "/etc/livedash"], check=False).returncode != 0, "nothing was written"


def test_the_kiosk_shows_the_page_turned_a_quarter(guest, provisioned):
    version = guest.run(["cage", "-v"])
    assert (version.stdout + version.stderr).split()[-1].startswith("0.2"), "trixie's cage, without -r"
    wait_until(lambda: shows_live_page(grab(guest)), timeout=180, interval=2, what="the live page on the kiosk")
    (name, output), = outputs(guest).items()
    assert output["Enabled"] == "yes" and output["Transform"] == "90", output
    width, height, _ = grab(guest)
    assert height > width, f"a quarter turn shows the page in portrait, not {width}x{height}"
    shot = save_png(guest, ARTIFACTS / "kiosk-trixie-rotated.png")
    png = shot.read_bytes()
    assert png[12:16] == b"IHDR" and (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (width, height)
    print(f"\n{name}: {width}x{height}, transform {output['Transform']}; screenshot {shot}")


def test_the_schedule_switches_the_screen_off_and_on_with_chromium_running(guest, provisioned, schedule):
    timers = guest.run(["systemctl", "list-timers", "--all", "--no-legend", "livedash-kiosk-screen-*"]).stdout
    assert "livedash-kiosk-screen-off.timer" in timers and "livedash-kiosk-screen-on.timer" in timers
    calendar = guest.run(["systemctl", "show", "-P", "TimersCalendar", "livedash-kiosk-screen-off.timer"]).stdout
    assert schedule["kiosk_screen_off_at"] + ":00" in calendar
    wait_until(lambda: shows_live_page(grab(guest)), timeout=180, interval=2, what="the live page on the kiosk")
    before = grab(guest)
    cage, restarts = kiosk(guest, "MainPID"), kiosk(guest, "NRestarts")
    browser = guest.run(["pgrep", "-o", "-u", "kiosk", "-x", "chromium"]).stdout.split()

    guest.run(["systemctl", "start", "livedash-kiosk-screen@off.service"])  # what the off timer starts
    (name, output), = outputs(guest).items()
    assert output["Enabled"] == "no", output
    assert grab(guest) is None, "with its one output off, cage has nothing to screenshot"

    guest.run(["systemctl", "start", "livedash-kiosk-screen@on.service"])  # what the on timer starts
    output = outputs(guest)[name]
    assert output["Enabled"] == "yes" and output["Transform"] == "90", output
    wait_until(lambda: shows_live_page(grab(guest)), timeout=60, interval=1,
               what="the live page back, filling the screen")
    after = grab(guest)
    assert after[:2] == before[:2], "the same portrait size as before"
    shot = save_png(guest, ARTIFACTS / "kiosk-trixie-screen-back-on.png")
    assert (kiosk(guest, "MainPID"), kiosk(guest, "NRestarts")) == (cage, restarts), "cage was not restarted"
    assert guest.run(["pgrep", "-o", "-u", "kiosk", "-x", "chromium"]).stdout.split() == browser, \
        "Chromium was not restarted"
    log = guest.run(["journalctl", "-u", "livedash-kiosk-screen@off.service", "-u", "livedash-kiosk-screen@on.service",
                     "--no-pager", "-o", "cat"]).stdout
    assert f"screen off: {name}" in log and f"screen on: {name}" in log
    print(f"\nscreen off and on: {name} {after[0]}x{after[1]}, Chromium {browser[0]} kept; screenshot {shot}")


def test_a_kiosk_starting_in_the_off_hours_starts_dark(guest, provisioned):
    """What ExecStartPost= does when the kiosk (re)starts inside the schedule's off hours, run
    with a schedule around the guest's clock: turned, and off; then the on unit brings it back."""
    now = datetime.datetime.strptime(guest.run(["date", "-u", "+%H:%M"]).stdout.strip(), "%H:%M")
    around = [(now + datetime.timedelta(hours=h)).strftime("%H:%M") for h in (-1, 1)]
    started = as_kiosk(guest, "LIVEDASH_KIOSK_TRANSFORM=90", f"LIVEDASH_KIOSK_SCREEN_OFF_AT={around[0]}",
                       f"LIVEDASH_KIOSK_SCREEN_ON_AT={around[1]}", "/usr/local/libexec/livedash-kiosk-screen", "start")
    assert f"(the schedule has it off until {around[1]})" in started.stderr
    (name, output), = outputs(guest).items()
    assert output["Enabled"] == "no", output  # wlr-randr shows no transform for an output that is off
    guest.run(["systemctl", "start", "livedash-kiosk-screen@on.service"])
    assert outputs(guest)[name]["Transform"] == "90"
    wait_until(lambda: shows_live_page(grab(guest)), timeout=60, interval=1, what="the live page back on")
    width, height, _ = grab(guest)
    assert height > width


def test_when_chromium_dies_the_kiosk_comes_back_turned(guest, provisioned):
    """Restart=always brings cage and Chromium back, and ExecStartPost= turns the new output again."""
    restarts = int(kiosk(guest, "NRestarts"))
    browser = guest.run(["pgrep", "-o", "-u", "kiosk", "-x", "chromium"]).stdout.split()[0]
    guest.run(["kill", "-9", browser])
    wait_until(lambda: int(kiosk(guest, "NRestarts")) > restarts, timeout=60, what="systemd to restart the kiosk")
    wait_until(lambda: shows_live_page(grab(guest)), timeout=180, interval=2, what="the live page after the restart")
    width, height, _ = grab(guest)
    (output,) = outputs(guest).values()
    assert height > width and output["Transform"] == "90", output


def test_a_second_run_changes_nothing(guest, provisioned, schedule):
    second = playbook(guest, kiosk_rotation="90", **schedule)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)["changed"] == "0", second.stdout[-3000:]


def test_the_installed_kiosk_units_verify(guest, provisioned):
    """The guest's own systemd (257) checks them; unknown keys only warn, so any output fails."""
    result = guest.run(["systemd-analyze", "verify", "livedash-kiosk.service", "livedash-kiosk-screen@off.service",
                        "livedash-kiosk-screen-off.timer", "livedash-kiosk-screen-on.timer"], check=False)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_livedash_kiosk_false_stops_disables_and_removes_the_kiosk(guest, provisioned):
    removed = playbook(guest, livedash_kiosk="false")
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert int(recap(removed.stdout)["changed"]) > 0
    for unit in ("livedash-kiosk.service", "livedash-kiosk-screen-off.timer", "livedash-kiosk-screen-on.timer"):
        assert guest.run(["systemctl", "is-active", unit], check=False).stdout.strip() == "inactive", unit
        assert guest.run(["systemctl", "is-enabled", unit], check=False).stdout.strip() in ("", "not-found"), unit
    left = guest.run(["ls", "/etc/systemd/system/livedash-kiosk.service", "/etc/systemd/system/livedash-kiosk-screen@.service",
                      "/etc/livedash/kiosk.env", "/usr/local/libexec/livedash-kiosk-wait",
                      "/usr/local/libexec/livedash-kiosk-screen"], check=False)
    assert left.stdout == "", left.stdout
    assert guest.run(["pgrep", "-u", "kiosk"], check=False).stdout == "", "no cage, no Chromium"
    assert guest.run(["systemctl", "is-active", "livedash"]).stdout.strip() == "active", "the page is still served"
