"""The text log format: a line as logging's own Formatter writes it, the time included, though
the time is formatted once a second."""

from __future__ import annotations

import logging

from jobstore.cli.logs import TextFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def record_at(created: float, message: str) -> logging.LogRecord:
    record = logging.LogRecord("jobstore.test", logging.INFO, __file__, 1, message, (), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_text_lines_are_what_the_standard_formatter_writes() -> None:
    ours, standard = TextFormatter(), logging.Formatter(FORMAT)
    # Within one second, across a second, and back to an earlier one.
    for created in (1_780_000_000.001, 1_780_000_000.999, 1_780_000_001.5, 1_779_999_999.25):
        record = record_at(created, "job 1 started")
        assert ours.format(record) == standard.format(record)
