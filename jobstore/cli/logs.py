"""Logging set-up: human-readable text, or one JSON object per line for log pipelines."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message", ...extra}; uvicorn's access lines become fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if (
            record.name == "uvicorn.access"
            and isinstance(record.args, tuple)
            and len(record.args) == 5
        ):
            client, method, path, version, status = record.args
            doc.update(
                message=f"{method} {path} {status}",
                client=client,
                method=method,
                path=path,
                http_version=version,
                status=status,
            )
        else:
            doc["message"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """`2026-12-06 15:23:22,358 INFO logger: message`, the local time formatted once a second
    rather than once a line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = (
                second,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)),
            )
        return f"{self._stamp},{int(record.msecs):03d}"


def setup_logging(level: str, fmt: str = "text") -> None:
    # Neither format shows the thread, the process, or the caller's file and line: skip
    # gathering them for every record (the logging HOWTO's "Optimization"; about 2 us a line,
    # and an executor logs two lines per job).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx and httpcore log every upstream call's URL at INFO and its traffic at DEBUG; an
    # endpoints file may put a secret in a URL (${env:...}). A failed call is logged by jobstore,
    # by host and status.
    # Alembic's INFO lines (its plugins, "Context impl ...", each step) are noise too; the
    # store logs one line when it migrates.
    for name in ("httpx", "httpcore", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
