"""HTTP: the page, and JSON (and CSV) for health checks, scripts, spreadsheets and curl."""

from __future__ import annotations

import csv
import io
import time

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .aggregates import DEFAULT_WINDOW, WINDOWS, window_s

blueprint = Blueprint("web", __name__)


def _livedash():
    return current_app.extensions["livedash"]


@blueprint.get("/")
def index():
    theme = request.args.get("theme")
    return render_template("index.html", kiosk=request.args.get("kiosk") == "1",
                           theme=theme if theme in ("light", "dark") else None,
                           windows=WINDOWS, default_window=DEFAULT_WINDOW)


@blueprint.get("/healthz")
def healthz():
    """What systemd's helpers, the kiosk and a person with curl ask: is it serving, is each channel fresh."""
    return jsonify(_livedash().health())


@blueprint.get("/metrics")
def metrics():
    """Prometheus' scrape: each channel's value, counts and status, clients, backlogs, the MQTT link."""
    return Response(generate_latest(_livedash().metrics), content_type=CONTENT_TYPE_LATEST)


@blueprint.get("/api/channels")
def channels():
    return jsonify(_livedash().hub.describe())


CSV_COLUMNS = {"raw": ("seq", "t", "value"), "aggregates": ("t", "min", "max", "mean", "count")}


@blueprint.get("/api/history/<name>")
def history(name: str):
    """A channel's history as JSON: ``?window=`` (raw samples, or aggregates where the raw ring is
    shorter than the window), or without it the whole raw ring (``?since=SEQ``: after that seq)."""
    return jsonify(_history(name))


@blueprint.get("/api/history/<name>.csv")
def history_csv(name: str):
    """The same as CSV: ``seq,t,value`` for raw samples, ``t,min,max,mean,count`` for aggregates."""
    data = _history(name)
    rows = data["samples"] if data["kind"] == "raw" else data["buckets"]
    columns = CSV_COLUMNS[data["kind"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row[c] for c in columns] for row in rows)
    filename = f"livedash-{name}-{data.get('window', 'all')}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _history(name: str) -> dict:
    channel = _livedash().hub.channels.get(name)
    if channel is None:
        abort(404, description=f"no channel named {name!r}")
    unknown = sorted(set(request.args) - {"window", "since"})
    if unknown:
        abort(400, description=f"unknown parameter {unknown[0]!r} (expected window or since)")
    since = request.args.get("since")
    if since is not None and not (since.isascii() and since.isdigit()):
        abort(400, description=f"since: expected a sequence number (a whole number, 0 or more), got {since[:32]!r}")
    window = request.args.get("window")
    if window is None:
        return {"channel": name, "kind": "raw", "samples": channel.history(int(since or 0))}
    try:
        seconds = window_s(window)
    except ValueError as e:
        abort(400, description=str(e))
    data = channel.window(seconds, time.time() * 1000)
    if since is not None:
        if data["kind"] != "raw":
            abort(400, description=f"since: only for raw samples; window {window} is aggregated")
        data["samples"] = [s for s in data["samples"] if s["seq"] > int(since)]
    return {"channel": name, "window": window, **data}


@blueprint.app_errorhandler(400)
def bad_request(error):
    return jsonify({"error": "bad request", "detail": error.description}), 400


@blueprint.app_errorhandler(404)
def not_found(error):
    return jsonify({"error": "not found", "detail": error.description}), 404
