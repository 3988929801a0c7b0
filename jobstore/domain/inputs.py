"""What input from outside may hold: the node's limits, and the checks every door applies.

Text reaches jobstore through paths, query strings, headers, credentials, bodies, payloads and
CDM templates. Whatever of it is kept or shown again must be storable by both databases and
writable by the JSON encoder and the dashboard's templates, so it is checked once, where it
enters (`jobstore.api.boundary` for the request line and headers, `jsontext.loads` for JSON):

- no lone surrogates (not Unicode, so not UTF-8: no database, encoder or page can write them)
  and no NUL characters where text is stored as it is (PostgreSQL text cannot hold them; JSON
  writes them escaped, so a JSON payload's strings may hold them);
- no value nested deeper than `max_nesting` (Python's encoders fail near 1,000 levels, and a
  job's payload is written inside other objects);
- numbers the stores can hold: no JSON number that overflows to infinity, no id in a path of
  thousands of digits;
- no list of ids longer than `max_list_items` (each id costs work of its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jobstore.domain.errors import DecodeError

DEFAULT_MAX_NESTING = 64
DEFAULT_MAX_LIST_ITEMS = 10_000
DEFAULT_MAX_URL_BYTES = 8_192
MAX_NESTING_CEILING = 500  # well below Python's recursion limit, with room for the wrappers


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The node's limits on input (`--max-nesting`, `--max-list-items`, `--max-url-bytes`)."""

    max_nesting: int = DEFAULT_MAX_NESTING
    max_list_items: int = DEFAULT_MAX_LIST_ITEMS
    max_url_bytes: int = DEFAULT_MAX_URL_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_nesting <= MAX_NESTING_CEILING:
            raise ValueError(f"max_nesting must be 1 to {MAX_NESTING_CEILING}")
        if self.max_list_items < 1:
            raise ValueError("max_list_items must be at least 1")
        if self.max_url_bytes < 256:
            raise ValueError("max_url_bytes must be at least 256")


DEFAULT_INPUT_LIMITS = InputLimits()


class BadInput(DecodeError):
    """Input refused at the door, and where it was: `location` (path, query, header, body) and
    `name` (the parameter, header or top-level field), for facades that name fields."""

    def __init__(self, message: str, *, location: str, name: str, reason: str) -> None:
        super().__init__(message)
        self.location = location
        self.name = name
        self.reason = reason


class TooDeep(BadInput):
    """A value nested deeper than the limit."""


def refuse(what: str, reason: str, *, location: str, name: str, deep: bool = False) -> BadInput:
    """The error for `what` (as a message names it) failing `reason`."""
    kind = TooDeep if deep else BadInput
    return kind(f"{what} {reason}", location=location, name=name, reason=reason)


def text_problem(text: str, *, nul_ok: bool = False) -> str | None:
    """Why `text` cannot be stored, or None: a lone surrogate (not Unicode), or a NUL character
    unless `nul_ok` (text stored escaped, as JSON's strings are)."""
    if not nul_ok and "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode text: {exc.reason}"
    return None


def check_text(text: str, *, what: str, nul_ok: bool = False) -> None:
    """DecodeError unless `text` is storable (`text_problem`)."""
    if (why := text_problem(text, nul_ok=nul_ok)) is not None:
        raise DecodeError(f"{what} {why}")


def check_value(
    value: Any,
    *,
    what: str,
    max_nesting: int = DEFAULT_MAX_NESTING,
    nul_ok: bool = False,
    location: str = "body",
) -> None:
    """A decoded value (JSON, a CDM definition) must nest at most `max_nesting` levels, and
    hold only finite numbers and storable text (`text_problem`, with `nul_ok`). Walks without
    recursion, so any depth is safe. The BadInput's message names the path to the bad part
    (`options.job_tag`), its `name` the top-level field."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        field = path.split(".", 1)[0].split("[", 1)[0] or what
        where = f"{what}: {path}" if path else what
        if isinstance(item, str):
            if (why := text_problem(item, nul_ok=nul_ok)) is not None:
                raise refuse(where, why, location=location, name=field)
        elif isinstance(item, dict | list | tuple):
            if depth > max_nesting:
                why = f"nests deeper than {max_nesting} levels"
                raise refuse(what, why, location=location, name=field, deep=True)
            if isinstance(item, dict):
                for key, child in item.items():
                    name = str(key)
                    if (why := text_problem(name, nul_ok=nul_ok)) is not None:
                        raise refuse(f"a key in {where}", why, location=location, name=field)
                    stack.append((child, depth + 1, f"{path}.{name}" if path else name))
            else:
                stack.extend((c, depth + 1, f"{path}[{i}]") for i, c in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            why = "holds a number too large to store"
            raise refuse(where, why, location=location, name=field)


def check_count(count: int, *, what: str, limits: InputLimits) -> None:
    """A list of ids (or other per-item work) must have at most `max_list_items` items."""
    if count > limits.max_list_items:
        raise DecodeError(
            f"{what} has {count} items; at most {limits.max_list_items} are taken in one request"
        )
