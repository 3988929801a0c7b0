"""What every target's `main` does: instrument jobstore's own code, then hand over to atheris.

Only jobstore's functions (and the target's) are instrumented: `atheris.instrument_all()` would
patch every function loaded (SQLAlchemy, Starlette, ...) and take minutes before the first
input. Imported by the targets' `main` only, so `make test` never needs atheris.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable

OWN = ("jobstore", "__main__")


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and str(obj.__module__).startswith(OWN):
            try:
                atheris.instrument_func(obj)
            except Exception as exc:  # as instrument_all does: leave that one uninstrumented
                print(f"INFO: not instrumented: {obj.__qualname__}: {exc}", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
