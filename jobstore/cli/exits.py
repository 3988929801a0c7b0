"""Exit statuses of start-up failures, one line each on stderr (docs/configuration.md)."""

from __future__ import annotations

from jobstore.domain.errors import CannotListen, ConfigError, DatabaseUnusable, JobstoreError

EXIT_STATUS: tuple[tuple[type[JobstoreError], int], ...] = (
    (ConfigError, 2),
    (DatabaseUnusable, 3),
    (CannotListen, 4),
)


def exit_status(exc: JobstoreError) -> int | None:
    """The exit status `exc` ends a command with, or None when it is not a start-up failure."""
    return next((code for kind, code in EXIT_STATUS if isinstance(exc, kind)), None)
