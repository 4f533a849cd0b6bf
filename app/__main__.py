"""``python -m app`` / ``livedash``: read the config, then serve."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# eventlet's green DNS pulls in dnspython (about 19 MB on a Pi Zero's 512); livedash resolves
# nothing while serving, so plain getaddrinfo at start-up is enough. Must precede eventlet's import.
os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")

from .config import ASYNC_MODES, PIN_FACTORIES, ConfigError, load


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="livedash", description="Live numbers from sensors on a web page.")
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./livedash.toml, then /etc/livedash/livedash.toml)")
    parser.add_argument("--host", help="address to listen on (default 0.0.0.0: the whole LAN)")
    parser.add_argument("--port", help="port to listen on (default 5000)")
    parser.add_argument("--async-mode", choices=ASYNC_MODES, help="eventlet (default) or threading")
    parser.add_argument("--pin-factory", choices=PIN_FACTORIES, help="gpiozero pin factory (default auto)")
    parser.add_argument("--state-dir", metavar="PATH", help="where the secret key and history are kept")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    parser.add_argument("--check-config", action="store_true", help="check the config, print it, and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load(args.config, overrides={
            "server.host": args.host, "server.port": args.port, "server.async_mode": args.async_mode,
            "server.state_dir": args.state_dir, "server.log_level": args.log_level,
            "gpio.pin_factory": args.pin_factory,
        })
    except ConfigError as e:
        print(f"livedash: config error: {e}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"livedash: config ok ({config.path}): {len(config.channels)} channel(s), "
              f"{config.server.async_mode} on {config.server.host}:{config.server.port}")
        return 0
    from . import create_app
    from .server import serve
    from .systemd import log_handler

    logging.basicConfig(level=config.server.log_level.upper(), handlers=[log_handler()])
    logging.captureWarnings(True)  # gpiozero reports fallbacks as warnings: put them in the log
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is too much for an SD card

    try:
        serve(create_app(config))
    except OSError as e:
        print(f"livedash: cannot serve on {config.server.host}:{config.server.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
