"""The job read model: everything recorded about one job, assembled in one place.

`Client.job(job_id)` returns it; `tunesmith jobs show`, `tunesmith review show` and the review
page print it. Rows come from the metadata DB; the similarity matches from the job's workflow
history while Temporal keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client as TemporalClient

from activities.review import store as review_db
from infra.db import Database, jsonable
from schemas import names
from schemas.errors import JobNotFoundError
from schemas.jobs import CheckSimilarityOutput

# Artifact kinds a reviewer can listen to, in the order the artifacts are read (by kind).
LISTEN_KINDS = ("preview_mp3", "published_preview", "master_mp3")


@dataclass(frozen=True)
class JobView:
    """One job as recorded: its row, artifacts, review, ledger, review audit and similarity.

    Rows are as stored (datetimes of `job`, `artifacts`, `review` and `ledger` as ISO strings;
    `audit` rows keep their datetimes).
    """

    job_id: str
    job: dict[str, Any]
    artifacts: list[dict[str, Any]]
    review: dict[str, Any] | None
    ledger: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    web_ui: str
    similarity: CheckSimilarityOutput | None = None  # None: not read, or history gone
    overview_uri: str | None = None  # the spectrogram + waveform PNG, when there is one

    @property
    def controls(self) -> dict[str, Any]:
        """The normalized controls (ControlTokens as stored), empty before normalization."""
        return self.job.get("controls") or {}

    @property
    def master(self) -> dict[str, Any] | None:
        """The master WAV's artifact row (measurements and features), once post-processed."""
        return next((a for a in self.artifacts if a["kind"] == "master_wav"), None)

    @property
    def listen(self) -> dict[str, str]:
        """URIs of the audio a reviewer can listen to, by artifact kind."""
        return {a["kind"]: a["uri"] for a in self.artifacts if a["kind"] in LISTEN_KINDS}

    def record(self) -> dict[str, Any]:
        """What `tunesmith jobs show` prints: the DB's rows and the Web UI link."""
        return {"job": self.job, "artifacts": self.artifacts, "review": self.review,
                "ledger": self.ledger, "web_ui": self.web_ui}  # fmt: skip


def overview_uri(raw_bucket: str, job_id: str) -> str:
    """Where post-processing writes the job's spectrogram + waveform PNG."""
    return f"s3://{raw_bucket}/{job_id}/postprocess/overview.png"


async def read_job(
    db: Database, job_id: str, *, web_ui: str, temporal: TemporalClient | None = None
) -> JobView:
    """The job's rows from the metadata DB, and its similarity result from the workflow
    history when `temporal` is given.

    Raises:
        JobNotFoundError: the metadata DB has no such job.
    """
    job = await db.get_job(job_id)
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r} in the metadata DB")
    review = await db.get_review(job_id)
    return JobView(
        job_id=job_id,
        job=jsonable(job),
        artifacts=[jsonable(a) for a in await db.artifacts(job_id)],
        review=jsonable(review) if review else None,
        ledger=[jsonable(x) for x in await db.ledger(job_id)],
        audit=await review_db.audit_log(db, job_id),
        web_ui=web_ui,
        similarity=await similarity_from_history(temporal, job_id) if temporal else None,
    )


async def similarity_from_history(
    temporal: TemporalClient, job_id: str
) -> CheckSimilarityOutput | None:
    """The `check_similarity` result, read back from the job's workflow history."""
    try:
        history = await temporal.get_workflow_handle(job_id).fetch_history()
    except Exception:  # history gone (retention) or unreachable: show the rest
        return None
    scheduled: int | None = None
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == names.CHECK_SIMILARITY:
                scheduled = event.event_id
        elif event.HasField("activity_task_completed_event_attributes"):
            done = event.activity_task_completed_event_attributes
            if done.scheduled_event_id == scheduled:
                [out] = await temporal.data_converter.decode(
                    done.result.payloads, [CheckSimilarityOutput]
                )
                return out
    return None
