"""The README's configuration tables, written from the declaration (app/config.py, app/sensors/).

``./scripts/run --print-config-table`` prints them; tests/test_config.py fails while the
README's copy, between its ``config-tables`` markers, differs.
"""

from __future__ import annotations

from dataclasses import fields

from .config import ENVIRONMENT, FLAGS, TABLES, ChannelConfig
from .schema import default_of, settings
from .sensors import KINDS

BEGIN, END = "<!-- config-tables: begin (./scripts/run --print-config-table) -->", "<!-- config-tables: end -->"


def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return f"[{', '.join(toml(v) for v in value)}]"
    return "none" if value is None else str(value)


def _default(f) -> str:
    return f.metadata["shown"] or f"`{toml(default_of(f))}`"


def _meaning(f, dotted: str = "") -> str:
    names = [f"`{n}`" for n, d in ENVIRONMENT.items() if d == dotted]
    names += [f"`{n}`" for n, d in FLAGS.items() if d == dotted]
    check = f.metadata["check"]
    choices = ", ".join(f"`{c}`" for c in getattr(check, "choices", ()))
    parts = [p for p in (choices, f.metadata["help"]) if p]
    text = "; ".join(parts)
    return f"{text} ({', '.join(names)})".strip() if names else text


def tables() -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, cls in TABLES.items():
        rows += [f"| `[{name}] {f.name}` | {_default(f)} | {_meaning(f, f'{name}.{f.name}')} |" for f in settings(cls)]
    rows += ["", "Each `[[channels]]` table has:", "", "| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{f.name}` | {_default(f)} | {_meaning(f)} |" for f in settings(ChannelConfig)]
    rows += ["", "and the keys of its source:", "", "| source | reads | its keys (defaults) |", "|---|---|---|"]
    for kind in KINDS.values():
        keys = ", ".join(f"`{f.name}` ({toml(default_of(f))})" for f in fields(kind.options))
        rows.append(f"| `{kind.name}` | {kind.reads} | {keys or 'none'} |")
    rows += ["", "| source key | meaning |", "|---|---|"]
    for kind in KINDS.values():
        rows += [f"| `{kind.name}` `{f.name}` | {_meaning(f)} |" for f in settings(kind.options)]
    return "\n".join(rows)


def readme_copy(readme: str) -> str:
    """What the README holds between its markers."""
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
