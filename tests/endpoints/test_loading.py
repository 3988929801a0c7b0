"""Endpoint modules named on the command line are found in the working directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobstore.domain.errors import ConfigError
from jobstore.endpoints.registry import default_registry

MODULE = """
from jobstore import JobContext, endpoint

@endpoint("/count/words")
async def count_words(request: dict, ctx: JobContext) -> dict:
    return {"words": len(request.get("text", "").split())}
"""


def test_endpoints_module_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "wordpkg_for_loading_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in [m for m in sys.modules if m.startswith("wordpkg_for_loading_test")]:
        monkeypatch.delitem(sys.modules, name)
    registry = default_registry(["wordpkg_for_loading_test.jobs"])
    assert "/count/words" in registry


def test_a_missing_module_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot import endpoint module 'nopkg_here\.jobs'"):
        default_registry(["nopkg_here.jobs"])
