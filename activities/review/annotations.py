"""Annotating a job: tags, a rating, a note and whether it was published after an edit.

The use case behind `tunesmith review annotate` and the review page's annotation form: the
annotation is checked, its reviewer authorized for the job's tenant, then stored.
"""

from __future__ import annotations

from activities.review import store as review_db
from activities.review.authz import reviewer_refusal
from infra.db import Database
from schemas.errors import InvalidRequestError, JobNotFoundError, ReviewNotAllowedError


async def annotate_job(
    db: Database,
    job_id: str,
    *,
    reviewer: str,
    tags: list[str],
    rating: int | None,
    note: str | None,
    post_edit: bool,
) -> None:
    """Record an annotation by an authorized reviewer (any stage of the job).

    Raises:
        InvalidRequestError: the rating is not 1..5, or the annotation says nothing.
        JobNotFoundError: no such job.
        ReviewNotAllowedError: the reviewer may not review this job's tenant (or is unknown).
    """
    if rating is not None and not 1 <= rating <= 5:
        raise InvalidRequestError("rating must be 1..5")
    if not (tags or rating or note or post_edit):
        raise InvalidRequestError("give at least a tag, a rating, a note or post-edit")
    job = await db.get_job(job_id)
    if job is None:
        raise JobNotFoundError(f"no job {job_id!r} in the metadata DB")
    refusal = await reviewer_refusal(db, reviewer=reviewer, tenant=job["tenant"])
    if refusal:
        raise ReviewNotAllowedError(refusal)
    await review_db.add_annotation(db, job_id, reviewer=reviewer, tags=tags, rating=rating,
                                   note=note, post_edit=post_edit)  # fmt: skip
