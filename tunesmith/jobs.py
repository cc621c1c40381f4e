"""The job read model: everything recorded about one job, assembled in one place.

`Client.job(job_id)` returns it; `tunesmith jobs show`, `tunesmith review show` and the review
page print it. Everything comes from the metadata DB: the job's rows, its artifacts (the
overview image is the `overview_png` artifact), its review audit and its stored similarity
check (migration 0011). Jobs from before that migration have neither the stored check nor the
overview row: for them both are read back from the job's workflow history while Temporal
keeps it, as before, and are absent once it is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client as TemporalClient

from activities.review import store as review_db
from activities.similarity import store as similarity_db
from infra.db import Database, jsonable
from schemas import names
from schemas.errors import JobNotFoundError
from schemas.jobs import OVERVIEW_ARTIFACT, CheckSimilarityOutput, PostprocessOutput

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
    similarity: CheckSimilarityOutput | None = None  # None: not checked yet (or not known)
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


async def read_job(
    db: Database, job_id: str, *, web_ui: str, temporal: TemporalClient | None = None
) -> JobView:
    """The job's rows from the metadata DB. For a job from before migration 0011 (no stored
    similarity check or no overview row) and with `temporal` given, what is missing is read
    from the job's workflow history while it is kept.

    Raises:
        JobNotFoundError: the metadata DB has no such job.
    """
    job = await db.get_job(job_id)
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r} in the metadata DB")
    review = await db.get_review(job_id)
    artifacts = [jsonable(a) for a in await db.artifacts(job_id)]
    similarity = await similarity_db.read_check(db, job_id)
    overview = next((a["uri"] for a in artifacts if a["kind"] == OVERVIEW_ARTIFACT), None)
    if temporal is not None and (similarity is None or overview is None):
        old = await from_history(temporal, job_id)
        similarity = similarity or old.similarity
        overview = overview or old.overview_uri
    return JobView(
        job_id=job_id,
        job=jsonable(job),
        artifacts=artifacts,
        review=jsonable(review) if review else None,
        ledger=[jsonable(x) for x in await db.ledger(job_id)],
        audit=await review_db.audit_log(db, job_id),
        web_ui=web_ui,
        similarity=similarity,
        overview_uri=overview,
    )


@dataclass(frozen=True)
class HistoryFacts:
    """What a job from before migration 0011 recorded only in its workflow history."""

    similarity: CheckSimilarityOutput | None = None
    overview_uri: str | None = None


async def from_history(temporal: TemporalClient, job_id: str) -> HistoryFacts:
    """The `check_similarity` result and the overview PNG's URI (from the `postprocess`
    result), read back from the job's workflow history; empty when it is gone."""
    try:
        history = await temporal.get_workflow_handle(job_id).fetch_history()
    except Exception:  # history gone (retention) or unreachable: show the rest
        return HistoryFacts()
    scheduled: dict[int, str] = {}
    similarity: CheckSimilarityOutput | None = None
    overview: str | None = None
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name in (names.CHECK_SIMILARITY, names.POSTPROCESS):
                scheduled[event.event_id] = name
        elif event.HasField("activity_task_completed_event_attributes"):
            done = event.activity_task_completed_event_attributes
            name = scheduled.get(done.scheduled_event_id, "")
            if name == names.CHECK_SIMILARITY:
                [similarity] = await temporal.data_converter.decode(
                    done.result.payloads, [CheckSimilarityOutput]
                )
            elif name == names.POSTPROCESS:
                [post] = await temporal.data_converter.decode(
                    done.result.payloads, [PostprocessOutput]
                )
                overview = post.overview_uri
    return HistoryFacts(similarity=similarity, overview_uri=overview)
