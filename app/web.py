"""HTTP: the page, and JSON for health checks, scripts and curl."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

blueprint = Blueprint("web", __name__)


def _livedash():
    return current_app.extensions["livedash"]


@blueprint.get("/")
def index():
    return render_template("index.html", kiosk=request.args.get("kiosk") == "1")


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


@blueprint.get("/api/history/<name>")
def history(name: str):
    channel = _livedash().hub.channels.get(name)
    if channel is None:
        abort(404, description=f"no channel named {name!r}")
    since = request.args.get("since", default=0, type=int)
    return jsonify({"channel": name, "samples": channel.history(since)})


@blueprint.app_errorhandler(404)
def not_found(error):
    return jsonify({"error": "not found", "detail": error.description}), 404
