"""Object keys rendered from templates, safely.

Users write Sprig-style pipelines, as in the seed: ``/backups/mysql-{{ now | date
"2006.01.02-15:04:05" }}.sql``. We render them with Jinja2's sandbox: a Go pipeline stage
``| name ARG ARG`` is rewritten to Jinja's ``| name(ARG, ARG)``, and the ``date`` filter speaks
Go's reference-time layouts. Templates come from cluster users, so the sandbox, strict undefined
variables and a check of the rendered key (no ``..``, no control characters) keep a template
from reading anything it should not or writing outside its prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from streamer.errors import ConfigError

__all__ = ["VARIABLES", "check_template", "go_strftime", "render_path"]

#: The variables a template may use (``now`` is the time the backup starts, in UTC).
VARIABLES = ("now", "namespace", "run", "schedule", "workflow")
MAX_KEY_LENGTH = 1024  # S3's limit for object keys, in bytes

# Go's layout elements, longest first so "2006" wins over "2" and "January" over "Jan".
_GO_LAYOUT: list[tuple[str, Callable[[datetime], str]]] = [
    ("January", lambda t: t.strftime("%B")),
    ("Monday", lambda t: t.strftime("%A")),
    ("Z07:00", lambda t: _offset(t, ":") if t.utcoffset() else "Z"),
    ("-07:00", lambda t: _offset(t, ":")),
    ("-0700", lambda t: _offset(t, "")),
    ("2006", lambda t: f"{t.year:04d}"),
    (".000000", lambda t: f".{t.microsecond:06d}"),
    (".000", lambda t: f".{t.microsecond // 1000:03d}"),
    ("Jan", lambda t: t.strftime("%b")),
    ("Mon", lambda t: t.strftime("%a")),
    ("MST", lambda t: t.tzname() or "UTC"),
    ("002", lambda t: f"{t.timetuple().tm_yday:03d}"),
    ("-07", lambda t: _offset(t, "")[:3]),
    ("01", lambda t: f"{t.month:02d}"),
    ("02", lambda t: f"{t.day:02d}"),
    ("_2", lambda t: f"{t.day:>2d}"),
    ("06", lambda t: f"{t.year % 100:02d}"),
    ("15", lambda t: f"{t.hour:02d}"),
    ("03", lambda t: f"{(t.hour % 12) or 12:02d}"),
    ("04", lambda t: f"{t.minute:02d}"),
    ("05", lambda t: f"{t.second:02d}"),
    ("PM", lambda t: "PM" if t.hour >= 12 else "AM"),
    ("pm", lambda t: "pm" if t.hour >= 12 else "am"),
    ("1", lambda t: str(t.month)),
    ("2", lambda t: str(t.day)),
    ("3", lambda t: str((t.hour % 12) or 12)),
    ("4", lambda t: str(t.minute)),
    ("5", lambda t: str(t.second)),
]
_GO_TOKEN = re.compile("|".join(re.escape(token) for token, _ in _GO_LAYOUT))
_GO_FORMAT = dict(_GO_LAYOUT)


def _offset(t: datetime, sep: str) -> str:
    delta = t.utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{sep}{mins:02d}"


def go_strftime(t: datetime, layout: str) -> str:
    """Format ``t`` with a Go reference-time layout (``2006-01-02T15:04:05Z07:00``)."""
    return _GO_TOKEN.sub(lambda m: _GO_FORMAT[m.group(0)](t), layout)


def _date(value: Any, layout: str = "2006-01-02") -> str:
    if not isinstance(value, datetime):
        raise ConfigError(f"the date filter needs a time such as 'now', got {type(value).__name__}")
    return go_strftime(value, layout)


def _sprig_replace(value: Any, old: str, new: str) -> str:
    return str(value).replace(old, new)


_FILTERS: dict[str, Callable[..., Any]] = {
    "date": _date,
    "lower": lambda v: str(v).lower(),
    "upper": lambda v: str(v).upper(),
    "trim": lambda v: str(v).strip(),
    "trimPrefix": lambda v, p: str(v).removeprefix(p),
    "trimSuffix": lambda v, s: str(v).removesuffix(s),
    "replace": _sprig_replace,
    "default": lambda v, d="": v if v not in (None, "") else d,
}

# One Go pipeline stage after a '|': a filter name and space-separated literal arguments.
_GO_STAGE = re.compile(
    r"""\|\s*(?P<name>[A-Za-z_]\w*)(?P<args>(?:\s+(?:"(?:[^"\\]|\\.)*"|'[^']*'|-?\d+(?:\.\d+)?))+)(?=\s*(?:\||\}\}|-\}\}))"""
)
_GO_ARG = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'|-?\d+(?:\.\d+)?""")
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def _go_to_jinja(template: str) -> str:
    """Rewrite Sprig pipeline stages (``| date "2006"``) as Jinja filter calls."""

    def stage(m: re.Match[str]) -> str:
        args = ", ".join(_GO_ARG.findall(m.group("args")))
        return f"| {m.group('name')}({args})"

    return _EXPRESSION.sub(lambda m: _GO_STAGE.sub(stage, m.group(0)), template)


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(_FILTERS)
    env.globals.clear()
    return env


_ENV = _environment()


def _compile(template: str) -> jinja2.Template:
    try:
        return _ENV.from_string(_go_to_jinja(template))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"path template {template!r}: syntax error: {exc.message}") from exc


def render_path(template: str, variables: Mapping[str, str], now: datetime | None = None) -> str:
    """Render ``template`` into an object key (leading slashes dropped).

    Raises ConfigError on syntax errors, unknown variables, sandbox violations and keys that
    would be unsafe (empty, ``..`` segments, control characters, longer than S3 allows).
    """
    unknown = set(variables) - set(VARIABLES)
    if unknown:
        raise ConfigError(
            f"unknown template variable(s) {', '.join(sorted(unknown))}; "
            f"available: {', '.join(VARIABLES)}"
        )
    context: dict[str, Any] = dict.fromkeys(VARIABLES, "")
    context.update(variables)
    context["now"] = now or datetime.now(UTC)
    compiled = _compile(template)
    try:
        rendered = compiled.render(context)
    except SecurityError as exc:
        raise ConfigError(
            f"path template {template!r} is not allowed: {exc}; "
            "templates may only use the variables and filters they are given"
        ) from exc
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"path template {template!r}: {exc.message}; available: {', '.join(VARIABLES)}"
        ) from exc
    except ConfigError as exc:
        raise ConfigError(f"path template {template!r}: {exc}") from exc
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        raise ConfigError(f"path template {template!r} failed to render: {exc}") from exc
    return _checked_key(template, rendered)


def _checked_key(template: str, key: str) -> str:
    key = key.lstrip("/")
    if not key:
        raise ConfigError(f"path template {template!r} renders to an empty key")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ConfigError(
            f"path template {template!r} renders to {key!r}, which has a '.' or '..' segment; "
            "keys must stay under the storage's prefix"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise ConfigError(f"path template {template!r} renders a key with control characters")
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise ConfigError(
            f"path template {template!r} renders a key longer than {MAX_KEY_LENGTH} bytes"
        )
    return key


def check_template(template: str) -> None:
    """Raise ConfigError if ``template`` would not render (checked with sample values)."""
    sample = {name: f"sample-{name}" for name in VARIABLES if name != "now"}
    render_path(template, sample, datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC))
