"""The `normalize_controls` activity (CPU queue)."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.controls.inputs import load_stored_inputs
from activities.controls.normalize import normalize_request
from activities.experiments import apply_experiments
from activities.experiments import store as experiments_db
from infra.db import Database
from infra.store import ObjectStore
from schemas import names
from schemas.errors import INVALID_REQUEST, JOB_ALREADY_FINISHED, InvalidRequestError
from schemas.jobs import NormalizeInput, NormalizeOutput
from schemas.request import validate_request


class ControlActivities:
    """The CPU queue's first step, bound to the metadata DB and the object store (inputs)."""

    def __init__(self, db: Database, store: ObjectStore) -> None:
        self.db = db
        self.store = store

    @activity.defn(name=names.NORMALIZE_CONTROLS)
    async def normalize_controls(self, inp: NormalizeInput) -> NormalizeOutput:
        """Validate the request, load and analyse its inputs (MIDI, reference audio), normalize
        it to ControlTokens and record the job row.

        Raises:
            ApplicationError: type `InvalidRequest`, non-retryable, when the request or an input
                is invalid; nothing is written in that case.
        """
        # A/B experiments: deterministic per job id; explicit choices are never overridden.
        experiments = await experiments_db.active_experiments(self.db)
        data, assignments = apply_experiments(dict(inp.request), inp.job_id, experiments)
        try:
            request = validate_request(data)
            inputs = await asyncio.to_thread(load_stored_inputs, request, self.store)
            request, tokens = normalize_request(request, inputs)
        except InvalidRequestError as exc:
            raise ApplicationError(
                str(exc), {"problems": exc.problems}, type=INVALID_REQUEST, non_retryable=True
            ) from None
        if (stage := await self.db.finished_stage(inp.job_id)) is not None:
            # The job id (from an idempotency key) outlived its workflow history: never render,
            # publish or charge it a second time.
            raise ApplicationError(
                f"job {inp.job_id} already ended ({stage}); its results are in the metadata DB",
                type=JOB_ALREADY_FINISHED,
                non_retryable=True,
            )
        digest = request.sha256()
        await experiments_db.record_assignments(self.db, inp.job_id, assignments)
        await self.db.upsert_job(
            job_id=inp.job_id,
            tenant=request.tenant,
            idempotency_key=inp.idempotency_key,
            request=request.model_dump(mode="json"),
            request_sha256=digest,
            controls=tokens.model_dump(mode="json"),
            model_id=tokens.model_id,
            stage=inp.next_stage.value,
        )
        return NormalizeOutput(
            tokens=tokens,
            request=request,
            request_sha256=digest,
            experiments=[a.model_dump(mode="json") for a in assignments],
        )
