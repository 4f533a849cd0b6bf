"""livedash: live numbers from a Raspberry Pi's sensors on a web page, pushed to every open page."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_socketio import SocketIO

from . import events, web
from .config import Config
from .livedash import Livedash

# templates/ and static/ sit beside the package in a checkout, and inside it in the wheel.
PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE if (PACKAGE / "templates").is_dir() else PACKAGE.parent

__all__ = ["create_app", "Config"]


def create_app(config: Config) -> Flask:
    """Build the Flask app, its SocketIO and its Livedash from *config*; nothing starts yet."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # viewers only read; nothing big is ever posted
    socketio = SocketIO(
        app,
        async_mode=config.server.async_mode,  # explicit: never whatever happens to be installed
        cors_allowed_origins=None,  # same origin only
        max_http_buffer_size=16 * 1024,  # a viewer's messages are a few names
        # A client that does not answer pings (a hung tab, a phone gone from the Wi-Fi) is let
        # go within client_timeout_s, and what was queued for it with it.
        ping_interval=config.server.client_timeout_s / 2,
        ping_timeout=config.server.client_timeout_s / 2,
        logger=False,
        engineio_logger=False,
    )
    livedash = Livedash(config, socketio)
    app.extensions["livedash"] = livedash
    app.register_blueprint(web.blueprint)
    events.register(socketio, livedash)
    return app
