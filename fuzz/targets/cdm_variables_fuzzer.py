"""Fuzz target `cdm_variables`: CDM's `${...}` placeholders (api/cdm/variables.py).

Input: text (UTF-8 with lone surrogates let through, else Latin-1). Its first line is the
template; each further line `name=value` is a variable of the start.

Rule: resolve returns text or raises a ClientError (BadRequest: an unknown variable, a bad
built-in); text without `${` comes back unchanged; `placeholders` never fails. Anything else
is a crash.

    python fuzz/targets/cdm_variables_fuzzer.py fuzz/corpus/cdm_variables
"""

from __future__ import annotations

from datetime import UTC, datetime

from jobstore.api.cdm.variables import placeholders, resolve
from jobstore.domain.errors import ClientError

NOW = datetime(2026, 3, 31, 23, 59, 58, 123000, tzinfo=UTC)


def as_text(data: bytes) -> str:
    """Any bytes as text: UTF-8 (lone surrogates allowed), else one character per byte."""
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def test_one_input(data: bytes) -> None:
    template, _, rest = as_text(data).partition("\n")
    variables: dict[str, str] = {}
    for line in rest.split("\n"):
        name, _, value = line.partition("=")
        variables[name] = value
    placeholders(template)
    try:
        resolved = resolve(template, variables, NOW)
    except ClientError:
        return
    assert isinstance(resolved, str)
    if "${" not in template:
        assert resolved == template


def main() -> None:
    from _harness import fuzz  # beside this file; it imports atheris, which make test lacks

    fuzz(test_one_input)


if __name__ == "__main__":
    main()
