"""Why a value does not fit an Avro schema, said for people: which field, what it must be.

These run only once a value has been refused (fastavro decides what is valid); they turn the
refusal into a short message. Messages name fields by their path (`inner.items[2]`) and show
at most a short, printable excerpt of a value, never a Python repr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SHOWN_CHARS = 40  # of a string value, in a message
SHOWN_NAMES = 8  # of a record's fields or an enum's symbols, in a message
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_ARTICLES = {
    "null": "null",
    "boolean": "a boolean (true or false)",
    "int": "an int",
    "long": "a long",
    "float": "a float",
    "double": "a double",
    "string": "a string",
    "bytes": "bytes",
}
_MISSING = object()


def short(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to `limit` characters, with anything unprintable shown as '?'."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return "".join(c if c.isprintable() else "?" for c in cut)


def describe_value(value: Any) -> str:
    """A JSON value in a few words: `the string 'soon'`, `the number 5`, `an array`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return f"the number {short(str(value))}"
        except ValueError:  # an int too long to print
            return "a number"
    if isinstance(value, str):
        return f"the string '{short(value)}'"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    if isinstance(value, Sequence):
        return "an array"
    return "a value of another kind"


def type_label(schema: Any, named: Mapping[str, Any]) -> str:
    """What a value of this Avro type is, in words: `a double`, `null or a string`."""
    if isinstance(schema, list):
        return " or ".join(type_label(branch, named) for branch in schema)
    if isinstance(schema, str):
        if schema in _ARTICLES:
            return _ARTICLES[schema]
        resolved = named.get(schema)
        return type_label(resolved, named) if isinstance(resolved, dict) else f"a {schema}"
    kind = schema.get("type")
    if kind in ("record", "error"):
        fields = _some([f["name"] for f in schema.get("fields", [])])
        return f"an object with the fields {fields}" if fields else "an object"
    if kind == "enum":
        return f"one of {_some(list(schema.get('symbols', [])))}"
    if kind == "array":
        return f"an array of {_plural(type_label(schema['items'], named))}"
    if kind == "map":
        return f"an object of {_plural(type_label(schema['values'], named))}"
    if kind == "fixed":
        return f"{schema.get('size')} bytes"
    return type_label(kind, named)  # a primitive written as {"type": ...}, logical types too


def _some(names: list[str]) -> str:
    """Names joined by commas, at most SHOWN_NAMES of them."""
    more = ", ..." if len(names) > SHOWN_NAMES else ""
    return ", ".join(short(str(n)) for n in names[:SHOWN_NAMES]) + more


def _plural(label: str) -> str:
    for article in ("an ", "a "):
        if label.startswith(article) and " or " not in label:
            return label[len(article) :] + "s"
    return label


def explain_mismatch(value: Any, schema: Any, named: Mapping[str, Any]) -> str | None:
    """The first reason `value` (decoded JSON) does not fit `schema`, or None if none is found.

    Follows fastavro's validation rules; the caller only asks after fastavro refused the value,
    and says something general when this finds nothing.
    """
    try:
        return _problem(value, schema, named, "")
    except RecursionError:
        return None


def _where(path: str) -> str:
    return f"field '{short(path, 80)}'" if path else "the payload"


def _problem(value: Any, schema: Any, named: Mapping[str, Any], path: str) -> str | None:
    """Why `value` at `path` does not fit `schema`; None when it fits."""
    if isinstance(schema, list):
        return _union_problem(value, schema, named, path)
    if isinstance(schema, str) and schema not in _ARTICLES:
        resolved = named.get(schema)
        return None if resolved is None else _problem(value, resolved, named, path)
    kind = schema if isinstance(schema, str) else schema.get("type")
    if isinstance(kind, list | dict) or (isinstance(kind, str) and kind in named):
        return _problem(value, kind, named, path)  # {"type": <a union, a type or a name>}

    def wrong() -> str:
        return f"{_where(path)} must be {type_label(schema, named)}, got {describe_value(value)}"

    if kind in ("record", "error"):
        if not isinstance(value, Mapping):
            return wrong()
        return _record_problem(value, schema, named, path)
    if kind == "array":
        if isinstance(value, str) or not isinstance(value, Sequence):
            return wrong()
        for i, item in enumerate(value):
            found = _problem(item, schema["items"], named, f"{path}[{i}]")
            if found:
                return found
        return None
    if kind == "map":
        if not isinstance(value, Mapping):
            return wrong()
        for key, item in value.items():
            found = _problem(item, schema["values"], named, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if kind == "enum":
        return None if isinstance(value, str) and value in schema.get("symbols", ()) else wrong()
    if kind in _INT_RANGE:
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = _INT_RANGE[kind]
            if low <= value <= high:
                return None
            label = f"{type_label(kind, named)} from {low} to {high}"
            return f"{_where(path)} must be {label}, got {describe_value(value)}"
        return wrong()
    if kind in ("float", "double"):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else wrong()
    if kind == "string":
        return None if isinstance(value, str) else wrong()
    if kind == "boolean":
        return None if isinstance(value, bool) else wrong()
    if kind == "null":
        return None if value is None else wrong()
    if kind in ("bytes", "fixed"):
        return f"{wrong()} (a JSON payload cannot carry Avro bytes: send this one in binary)"
    return None  # a type this does not know: let the caller speak generally


def _record_problem(
    value: Mapping[str, Any], schema: dict[str, Any], named: Mapping[str, Any], path: str
) -> str | None:
    for field in schema.get("fields", []):
        name = field["name"]
        inner = f"{path}.{name}" if path else name
        given = value.get(name, _MISSING)
        if given is _MISSING:
            given = field.get("default")  # fastavro reads a missing field as its default
            if _problem(given, field["type"], named, inner) is not None:
                return f"missing required field '{short(inner, 80)}'"
            continue
        found = _problem(given, field["type"], named, inner)
        if found:
            return found
    return None


def _union_problem(
    value: Any, branches: list[Any], named: Mapping[str, Any], path: str
) -> str | None:
    problems = [_problem(value, branch, named, path) for branch in branches]
    if any(p is None for p in problems):
        return None
    # One branch of the value's own kind (an object for the one record): say what is wrong
    # inside it rather than listing every branch.
    same_kind = [p for b, p in zip(branches, problems, strict=True) if _kind_fits(value, b, named)]
    if len(same_kind) == 1:
        return same_kind[0]
    return f"{_where(path)} must be {type_label(branches, named)}, got {describe_value(value)}"


def _kind_fits(value: Any, schema: Any, named: Mapping[str, Any]) -> bool:
    """Whether `value` is of the JSON kind this branch takes (object, array, string...)."""
    if isinstance(schema, str) and schema not in _ARTICLES:
        schema = named.get(schema, schema)
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if isinstance(value, Mapping):
        return kind in ("record", "error", "map")
    if isinstance(value, str):
        return kind in ("string", "enum")
    if isinstance(value, bool):
        return kind == "boolean"
    if isinstance(value, int | float):
        return kind in ("int", "long", "float", "double")
    if isinstance(value, Sequence):
        return kind == "array"
    return False


def binary_type_label(schema: Any) -> str:
    """An Avro type by its Avro name, for a binary decode message: `double`, `enum E`."""
    if isinstance(schema, list):
        return "union of " + ", ".join(binary_type_label(b) for b in schema)
    if isinstance(schema, str):
        return short(schema)
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        return f"{kind} {short(str(schema.get('name', '')))}".strip()
    if isinstance(kind, str):
        return kind
    return binary_type_label(kind)


def binary_reason(exc: BaseException, field: str | None, field_type: Any) -> str:
    """Why Avro bytes did not decode, from fastavro's exception, without its text.

    fastavro's messages name Python objects (`<_io.BytesIO object at 0x...>`) and internal
    sizes; only the kind of failure is kept.
    """
    where = f"field '{short(field, 80)}'" if field else "the data"
    if isinstance(exc, EOFError):
        return (
            f"it ends too early (in field '{short(field, 80)}')" if field else "it ends too early"
        )
    if isinstance(exc, UnicodeDecodeError):
        return f"{where} holds text that is not valid UTF-8"
    if field is None:
        return "it is not Avro data of this schema"
    return f"{where} does not hold a valid {binary_type_label(field_type)}"
