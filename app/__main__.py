"""``python -m app`` / ``livedash``: read the config, then serve."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# eventlet's green DNS pulls in dnspython (about 19 MB on a Pi Zero's 512); livedash resolves
# nothing while serving, so plain getaddrinfo at start-up is enough. Must precede eventlet's import.
os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")

from .config import FLAGS, SETTINGS, ConfigError, load
from .schema import default_of


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="livedash", description="Live numbers from sensors on a web page.")
    parser.add_argument("--config", metavar="PATH", help="TOML file (default: ./livedash.toml, then /etc/livedash/livedash.toml)")
    for flag, dotted in FLAGS.items():  # each setting declared with flag=True (app/config.py)
        setting = SETTINGS[dotted]
        choices, default = getattr(setting.metadata["check"], "choices", None), default_of(setting)
        parser.add_argument(flag, dest=dotted, metavar=None if choices else setting.name.upper(), choices=choices,
                            help=f"{setting.metadata['help']} (default {default!r})".replace("`", ""))
    parser.add_argument("--check-config", action="store_true", help="check the config, print it, and exit")
    parser.add_argument("--print-config-table", action="store_true",
                        help="print the README's tables of settings, as declared, and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_config_table:
        from .configdoc import tables

        print(tables())
        return 0
    try:
        config = load(args.config, overrides={dotted: getattr(args, dotted) for dotted in FLAGS.values()})
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
