"""Named job definitions (CDM's "jobs") and their submissions, as values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Definition", "SubmissionRow"]


@dataclass(frozen=True, slots=True)
class Definition:
    cdm_job_id: int
    project: str
    cluster_id: str
    name: str
    job_type: str
    definition: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_by: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    """A submission with its job's state; from the tombstone when the job row was removed."""

    job_id: int
    job_name: str
    is_delete_job: bool
    created_by: str | None
    created_at: datetime
    status: str
    job_tag: str
    progress: int
    started_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    status_map: dict[str, str]
    response_text: str | None
