"""The `finish_job` activity (CPU queue): record a job that ended without publishing."""

from __future__ import annotations

from temporalio import activity

from infra.db import Database
from schemas import names
from schemas.jobs import FinishJobInput


class JobActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name=names.FINISH_JOB)
    async def finish_job(self, inp: FinishJobInput) -> None:
        """Mark the job's terminal stage (failed, ...) with its error, if the job row exists."""
        await self.db.set_stage(inp.job_id, inp.stage.value, error=inp.error, finished=True)
