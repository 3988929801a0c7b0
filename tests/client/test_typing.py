"""The client's types as an application's type checker sees them (typed_usage.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

USAGE = Path(__file__).with_name("typed_usage.py")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_usage_type_checks() -> None:
    out, err, status = mypy_api.run(["--strict", "--no-error-summary", str(USAGE)])
    assert status == 0, out + err
