"""The `normalize_controls` activity (CPU queue)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.controls.normalize import normalize_request
from infra.db import Database
from schemas.errors import INVALID_REQUEST, JOB_ALREADY_FINISHED, InvalidRequestError
from schemas.jobs import NormalizeInput, NormalizeOutput


class ControlActivities:
    """The CPU queue's first step, bound to the metadata DB."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name="normalize_controls")
    async def normalize_controls(self, inp: NormalizeInput) -> NormalizeOutput:
        """Validate the request, normalize it to ControlTokens and record the job row.

        Raises:
            ApplicationError: type `InvalidRequest`, non-retryable, when the request is invalid;
                nothing is written in that case.
        """
        try:
            request, tokens = normalize_request(inp.request)
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
        await self.db.upsert_job(
            job_id=inp.job_id,
            tenant=request.tenant,
            idempotency_key=inp.idempotency_key,
            request=request.model_dump(mode="json"),
            request_sha256=digest,
            controls=tokens.model_dump(mode="json"),
            model_id=tokens.model_id,
        )
        return NormalizeOutput(
            tokens=tokens, request=request.model_dump(mode="json"), request_sha256=digest
        )
