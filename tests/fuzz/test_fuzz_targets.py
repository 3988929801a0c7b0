"""The coverage-guided fuzz targets (fuzz/targets/) over their seed corpus, without atheris.

`make fuzz` runs each target under atheris from fuzz/corpus/<name>/; here every input of that
corpus (its seeds, and the reproducers of fixed crashes kept beside them) goes through the
target's own `test_one_input`, so a broken target, a stale seed or a crash that came back fails
`make test` even where atheris is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from jobstore.codecs import snappy

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
SUFFIX = "_fuzzer.py"
TARGETS = sorted(p.name[: -len(SUFFIX)] for p in (FUZZ / "targets").glob(f"*{SUFFIX}"))
EXPECTED = [
    "cdm_bodies",
    "cdm_variables",
    "kinetica_envelope",
    "kinetica_payloads",
    "rest_bodies",
    "snappy",
]


def load(name: str) -> ModuleType:
    """The target's module, loaded from its file (fuzz/ is not a package)."""
    module_name = f"jobstore_fuzz_target_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FUZZ / "targets" / f"{name}{SUFFIX}")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def entry(name: str) -> Callable[[bytes], None]:
    function: Callable[[bytes], None] = load(name).test_one_input
    return function


def inputs(name: str) -> list[Path]:
    return sorted(p for p in (FUZZ / "corpus" / name).iterdir() if p.is_file())


def test_every_wire_decoder_has_a_target_and_seeds() -> None:
    assert TARGETS == EXPECTED
    for name in TARGETS:
        assert len(list((FUZZ / "corpus" / name).iterdir())) >= 4, name


@pytest.mark.parametrize("name", TARGETS)
def test_each_target_takes_its_corpus(name: str) -> None:
    test_one_input = entry(name)
    for path in inputs(name):
        test_one_input(path.read_bytes())  # any exception here is the crash atheris would report


@pytest.mark.parametrize("name", TARGETS)
def test_targets_import_atheris_only_to_fuzz(name: str) -> None:
    load(name)
    source = (FUZZ / "targets" / f"{name}{SUFFIX}").read_text()
    assert "\nimport atheris" not in source and "\nfrom atheris" not in source
    assert callable(load(name).main)


def test_a_target_reports_an_exception_other_than_a_client_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The harness can fail: a decoder that raises something undocumented is a crash."""

    def broken(data: bytes) -> bytes:
        raise IndexError("not a ClientError")

    monkeypatch.setattr(snappy, "decompress", broken)
    with pytest.raises(IndexError):
        entry("snappy")(snappy.compress(b"seed"))


def test_a_target_reports_a_broken_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snappy, "compress", lambda data: b"\x01\x00x")
    with pytest.raises(AssertionError):
        entry("snappy")(b"\x00")
