"""The GenerateTrack pipeline end to end on the real embedded stack."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
import soundfile as sf

from activities.similarity import store as similarity_db
from infra.db import Database
from infra.settings import Settings
from infra.stack import LocalStack, console_script
from infra.store import ObjectStore
from schemas.jobs import (
    CheckSimilarityOutput,
    ReviewRecommendation,
    ReviewState,
    SimilarityMatch,
    Stage,
)
from tests.integration.helpers import assert_nothing_recorded, short_request, wait_for_stage
from tunesmith import (
    Client,
    IdempotencyConflictError,
    InvalidRequestError,
    JobFailedError,
    ReviewNotAllowedError,
)
from tunesmith.jobs import from_history

pytestmark = pytest.mark.integration


async def test_auto_approved_run_is_published_once(
    client: Client, db: Database, store: ObjectStore, settings: Settings, tmp_path
) -> None:
    handle = await client.submit(short_request(duration_s=12.0))
    result = await handle.result()

    assert result.stage is Stage.PUBLISHED and result.review_state is ReviewState.AUTO_APPROVED
    assert result.model_id == "draft" and result.seed == 7
    m = result.measurements
    assert m is not None and abs(m.integrated_lufs + 14.0) <= 0.5 and m.true_peak_dbtp <= -1.0
    assert m.duration_s == pytest.approx(12.0, abs=1e-3)
    assert set(result.artifacts) == {"published_wav24", "published_mp3", "published_preview",
                                     "published_overview", "provenance"}  # fmt: skip

    wav = store.download(result.artifacts["published_wav24"], tmp_path / "out.wav")
    info = sf.info(wav)
    assert info.frames == 12 * 44100 and info.samplerate == 44100
    provenance = json.loads(store.get_bytes(result.artifacts["provenance"]))
    model = provenance["model"]
    assert (model["id"], model["version"], model["weights_sha256"]) == (
        "draft", result.model_version, None,  # the draft model has no weights
    )  # fmt: skip
    assert provenance["seed"] == 7 and provenance["controls"]["key_name"] == "A minor"
    assert provenance["outputs"]["published_wav24"]["sha256"]
    assert provenance["delivery_profile"] == "streaming" and provenance["quality"]["score"] == 1.0
    assert provenance["features"]["key"] == "A minor"

    job = await db.get_job(handle.job_id)
    assert job is not None and job["stage"] == "published" and job["finished_at"] is not None
    kinds = {a["kind"] for a in await db.artifacts(handle.job_id)}
    assert kinds == {"raw", "master_wav", "master_mp3", "preview_mp3", "overview_png",
                     "published_wav24", "published_mp3", "published_preview"}  # fmt: skip
    ledger = await db.ledger(handle.job_id)
    assert len(ledger) == 1 and ledger[0]["amount_cents"] == 2  # 12 s at 10 c/min, rounded up
    assert (await db.get_review(handle.job_id))["outcome"] == "auto_approved"
    assert len(await db.outbox(handle.job_id)) == 1
    fingerprint = await db.pool.fetchrow(
        "SELECT * FROM fingerprints WHERE job_id=$1", handle.job_id
    )
    assert fingerprint is not None and len(fingerprint["items"]) > 50

    status = await handle.status()
    assert status.stage is Stage.PUBLISHED and status.progress == 1.0

    # The similarity check and the overview image are stored with the job (migration 0011):
    # the job view reads them from the DB, and they are what the history recorded.
    old = await from_history(client.temporal, handle.job_id)
    stored = await similarity_db.read_check(db, handle.job_id)
    assert stored is not None and stored == old.similarity
    view = await client.job(handle.job_id, db=db)
    overview = next(a for a in view.artifacts if a["kind"] == "overview_png")
    assert view.similarity == stored and view.overview_uri == overview["uri"] == old.overview_uri
    assert overview["format"] == "png" and overview["sample_rate"] is None
    assert overview["size_bytes"] == len(store.get_bytes(overview["uri"]))

    # Filterable in the Web UI: the search attributes were upserted by the workflow.
    query = f'TunesmithStage = "published" AND WorkflowId = "{handle.job_id}"'
    found = [w.id async for w in client.temporal.list_workflows(query)]
    assert found == [handle.job_id]


async def test_human_approval_through_the_stock_temporal_cli(
    client: Client, db: Database, settings: Settings, stack: LocalStack
) -> None:
    handle = await client.submit(short_request(review="required", seed=11))
    status = await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    assert status.review_state is ReviewState.AWAITING_REVIEW
    assert "required by the request" in status.review_reasons[0]
    assert (await db.get_job(handle.job_id))["stage"] == "awaiting_review"

    proc = subprocess.run(
        [console_script("temporal"), "workflow", "signal", "--address", settings.temporal_target,
         "--workflow-id", handle.job_id, "--name", "review",
         "--input", json.dumps({"decision": "approve", "reviewer": "alice", "note": "nice"})],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    result = await handle.result()
    assert result.stage is Stage.PUBLISHED and result.review_state is ReviewState.APPROVED
    assert result.review is not None and result.review.reviewer == "alice"
    review = await db.get_review(handle.job_id)
    assert review["outcome"] == "approved" and review["reviewer"] == "alice"
    assert len(await db.ledger(handle.job_id)) == 1


async def test_rejected_run_publishes_and_charges_nothing(
    client: Client, db: Database, store: ObjectStore, settings: Settings
) -> None:
    handle = await client.submit(short_request(review="required", seed=12))
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    status = await handle.reject(reviewer="bob", reason="too busy")
    assert status.stage is Stage.REJECTED

    result = await handle.result()
    assert result.stage is Stage.REJECTED and result.artifacts == {}
    assert store.list_keys(settings.published_bucket, f"{handle.job_id}/") == []
    assert await db.ledger(handle.job_id) == []
    job = await db.get_job(handle.job_id)
    assert job["stage"] == "rejected" and job["review_state"] == "rejected"
    assert (await db.get_review(handle.job_id))["note"] == "too busy"

    # A second decision is refused by the update's validator.
    with pytest.raises(ReviewNotAllowedError):
        await handle.approve(reviewer="carol")


async def test_review_of_a_job_not_awaiting_review_is_refused(client: Client) -> None:
    handle = await client.submit(short_request(seed=13, duration_s=6.0))
    await handle.result()
    with pytest.raises(ReviewNotAllowedError):
        await handle.approve(reviewer="alice")


async def test_review_wait_expires(settings: Settings, db: Database, store: ObjectStore) -> None:
    impatient = Client(
        (await Client.connect(settings)).temporal,
        settings.model_copy(update={"review_timeout_s": 1.0}),
    )
    handle = await impatient.submit(short_request(review="required", seed=14, duration_s=6.0))
    result = await handle.result()
    assert result.stage is Stage.EXPIRED and result.review_state is ReviewState.EXPIRED
    assert store.list_keys(settings.published_bucket, f"{handle.job_id}/") == []
    assert await db.ledger(handle.job_id) == []
    assert (await db.get_job(handle.job_id))["stage"] == "expired"


async def test_idempotent_submit_returns_the_same_job(client: Client, db: Database) -> None:
    request = short_request(seed=15, duration_s=6.0)
    first = await client.submit(request, idempotency_key="order-15")
    second = await client.submit(request, idempotency_key="order-15")
    assert first.job_id == second.job_id
    await first.result()
    third = await client.submit(request, idempotency_key="order-15")  # after it finished
    assert third.job_id == first.job_id
    query = f'WorkflowId = "{first.job_id}"'
    runs = [w async for w in client.temporal.list_workflows(query)]
    assert len(runs) == 1
    assert len(await db.ledger(first.job_id)) == 1

    with pytest.raises(IdempotencyConflictError):
        await client.submit(short_request(seed=16), idempotency_key="order-15")


async def test_invalid_request_starts_nothing(client: Client) -> None:
    before = [w async for w in client.temporal.list_workflows()]
    with pytest.raises(InvalidRequestError, match="tempo_bpm"):
        await client.submit({"prompt": "x", "tempo_bpm": 500})
    with pytest.raises(InvalidRequestError, match="unknown instrument"):
        await client.submit({"prompt": "x", "instruments": ["theremin-9000"]})
    after = [w async for w in client.temporal.list_workflows()]
    assert len(after) == len(before)


async def test_invalid_request_started_directly_fails_without_retrying(
    client: Client, db: Database
) -> None:
    from schemas.jobs import GenerateTrackInput

    job_id = "job-direct-invalid"
    await client.temporal.start_workflow(
        "GenerateTrack",
        GenerateTrackInput(job_id=job_id, request={"prompt": "", "duration_s": -1}),
        id=job_id,
        task_queue="tunesmith-cpu",
    )
    with pytest.raises(JobFailedError) as info:
        await client.get_handle(job_id).result()
    assert info.value.error_type == "InvalidRequest"
    assert "duration_s" in str(info.value)
    assert await db.get_job(job_id) is None  # nothing left behind
    history = await client.temporal.get_workflow_handle(job_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == ["normalize_controls", "finish_job"]  # no generate_audio, no retry
    started = [e.activity_task_started_event_attributes for e in history.events
               if e.HasField("activity_task_started_event_attributes")]  # fmt: skip
    assert [s.attempt for s in started] == [1, 1]


async def test_cancelled_job_is_recorded_and_not_published(
    client: Client, db: Database, store: ObjectStore, settings: Settings
) -> None:
    handle = await client.submit(short_request(review="required", seed=17, duration_s=6.0))
    await wait_for_stage(handle, Stage.AWAITING_REVIEW)
    await client.temporal.get_workflow_handle(handle.job_id).cancel()
    with pytest.raises(JobFailedError):
        await handle.result()
    for _ in range(50):  # the cleanup activity runs just before the workflow closes
        job = await db.get_job(handle.job_id)
        if job is not None and job["stage"] == "cancelled":
            break
        await asyncio.sleep(0.1)
    assert job is not None and job["stage"] == "cancelled" and job["finished_at"] is not None
    assert store.list_keys(settings.published_bucket, f"{handle.job_id}/") == []
    assert await db.ledger(handle.job_id) == []


async def test_job_id_that_already_finished_is_never_redone(client: Client, db: Database) -> None:
    """If a finished job's history were gone, its id must not render or charge again."""
    from schemas.jobs import GenerateTrackInput

    first = await client.submit(short_request(seed=18, duration_s=5.0))
    await first.result()
    rerun = first.job_id
    # As if the first history had expired: a new run for the same job id (under another
    # workflow id, since Temporal still holds the first one).
    await client.temporal.start_workflow(
        "GenerateTrack",
        GenerateTrackInput(job_id=rerun, request=short_request(seed=18).model_dump(mode="json")),
        id=f"{rerun}-replayed",
        task_queue="tunesmith-cpu",
    )
    with pytest.raises(JobFailedError) as info:
        await client.get_handle(f"{rerun}-replayed").result()
    assert info.value.error_type == "JobAlreadyFinished"
    assert len(await db.ledger(first.job_id)) == 1
    job = await db.get_job(first.job_id)
    assert job is not None and job["stage"] == "published"  # the failed rerun cannot demote it


async def test_similarity_matches_are_stored_once_per_match(db: Database) -> None:
    """A retried check writes the same rows once; a later attempt's matches replace an earlier
    one's; the read gives them back in the check's order."""
    job_id = "job-similarity-store"
    await db.upsert_job(job_id=job_id, tenant="t", idempotency_key=None, request={},
                        request_sha256="x", model_id="draft", stage="checking",
                        controls={"prompt": "p", "tier": "draft", "product": "track",
                                  "duration_s": 5.0, "seed": 1})  # fmt: skip
    melody = SimilarityMatch(recording_id="rec-2", title="Tune", method="melody", score=0.81,
                             query_offset_s=3.0, recording_offset_s=10.5, duration_s=12.0,
                             semitones=-2, tempo_factor=1.04)  # fmt: skip
    copy = SimilarityMatch(recording_id="rec-1", method="fingerprint", score=0.97,
                           query_offset_s=0.0, recording_offset_s=4.0, duration_s=20.0,
                           risk="block", bit_error_rate=0.03)  # fmt: skip
    check = CheckSimilarityOutput(
        fingerprint_sha256="ab", fingerprint_items=120, matches=[copy, melody], risk="block",
        recommendation=ReviewRecommendation(decision="needs_review", reasons=["copy"],
                                            policy_version="review-policy@1",
                                            required_approvals=2),
        risk_reasons=["a fingerprint-verified copy of rec-1"],
    )  # fmt: skip
    try:
        assert await similarity_db.read_check(db, job_id) is None
        await similarity_db.record_check(db, job_id, check)
        await similarity_db.record_check(db, job_id, check)  # a retried attempt
        assert await similarity_db.read_check(db, job_id) == check
        count = "SELECT count(*) FROM similarity_matches WHERE job_id = $1"
        assert await db.pool.fetchval(count, job_id) == 2
        later = check.model_copy(update={"matches": [melody], "risk": "review"})
        await similarity_db.record_check(db, job_id, later)
        assert await similarity_db.read_check(db, job_id) == later
        assert await db.pool.fetchval(count, job_id) == 1
    finally:
        await db.pool.execute("DELETE FROM jobs WHERE job_id = $1", job_id)


async def test_sdk_job_for_a_model_only_the_workers_refuse_fails_fast(
    client: Client, db: Database, store: ObjectStore
) -> None:
    """`submit` does not know the deployment's models: the job starts and fails at once at
    `normalize_controls` with InvalidRequest, leaving nothing charged or stored."""
    handle = await client.submit(short_request(model="no-such-model", duration_s=5.0))
    with pytest.raises(JobFailedError, match="unknown model 'no-such-model'") as failed:
        await asyncio.wait_for(handle.result(), 45)
    assert failed.value.error_type == "InvalidRequest"
    assert (await handle.status()).stage is Stage.FAILED
    await assert_nothing_recorded(db, store, handle.job_id)
