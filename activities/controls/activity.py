"""The `normalize_controls` activity (CPU queue)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.controls.normalize import normalize_request
from infra.db import Database
from schemas.errors import INVALID_REQUEST, InvalidRequestError
from schemas.jobs import NormalizeInput, NormalizeOutput


class ControlActivities:
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
