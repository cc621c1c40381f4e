"""SDK for the review queue beyond a decision (`JobHandle.approve` / `reject`): revisions.

Annotations are `activities.review.annotations.annotate_job`; the queue, reviewers and
metrics are `activities.review.store`.
"""

from __future__ import annotations

from typing import Any

from infra.db import Database
from schemas.errors import InvalidRequestError, JobNotFoundError
from tunesmith.client import Client, JobHandle

__all__ = ["revise"]


async def revise(client: Client, job_id: str, changes: dict[str, Any]) -> JobHandle:
    """Re-generate a job with changed controls: a new job with the original request plus
    `changes`, linked to the original (`revision_of`). The original is left as it is.

    Args:
        client: a connected client.
        job_id: the job to revise.
        changes: request fields and their new values, e.g. `{"tempo_bpm": 100}`.

    Raises:
        InvalidRequestError: the changes touch the tenant or the link, or the revised request
            is invalid; nothing was started.
        JobNotFoundError: the metadata DB has no such job.
    """
    if "revision_of" in changes or "tenant" in changes:
        raise InvalidRequestError("a revision keeps the original's tenant and link")
    db = await Database.open(client.settings, max_size=1)
    try:
        job = await db.get_job(job_id)
    finally:
        await db.close()
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r} in the metadata DB")
    request = {k: v for k, v in job["request"].items() if v is not None}
    request.update(changes, revision_of=job_id)
    return await client.submit(request)
