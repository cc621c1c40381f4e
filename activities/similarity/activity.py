"""The `check_similarity` activity (CPU queue): fingerprint, quality checks, review decision."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audio_io import read_audio
from activities.review.policy import decide
from activities.similarity.chromaprint import (
    ChromaprintUnavailableError,
    Fingerprint,
    FingerprintError,
    fingerprint_file,
)
from activities.similarity.quality import quality_findings
from infra.db import Database
from infra.store import ObjectStore
from schemas.errors import MISSING_DEPENDENCY
from schemas.jobs import CheckSimilarityInput, CheckSimilarityOutput, ReviewState
from schemas.request import ReviewMode


class SimilarityActivities:
    def __init__(self, store: ObjectStore, db: Database) -> None:
        self.store = store
        self.db = db

    def _analyse(self, inp: CheckSimilarityInput, tmp: Path) -> tuple[Fingerprint, list[str]]:
        path = self.store.download(inp.master.uri, tmp / "master.wav")
        fingerprint = fingerprint_file(path)
        samples, sample_rate = read_audio(path)
        findings = quality_findings(
            samples, sample_rate, requested_duration_s=inp.requested_duration_s
        )
        return fingerprint, findings

    @activity.defn(name="check_similarity")
    async def check_similarity(self, inp: CheckSimilarityInput) -> CheckSimilarityOutput:
        """Fingerprint the master with Chromaprint, run quality checks, apply the review policy.

        Matching against a catalog is not built yet: `matches` is always empty here.
        """
        try:
            with tempfile.TemporaryDirectory(prefix="tunesmith-sim-") as tmp:
                fingerprint, findings = await asyncio.to_thread(self._analyse, inp, Path(tmp))
        except ChromaprintUnavailableError as exc:
            raise ApplicationError(str(exc), type=MISSING_DEPENDENCY, non_retryable=True) from None
        except FingerprintError as exc:
            findings = [f"no fingerprint: {exc}"]
            fingerprint = None
        if fingerprint is not None:
            await self.db.upsert_fingerprint(
                inp.job_id,
                algorithm=fingerprint.algorithm,
                items=fingerprint.items,
                sha256=fingerprint.sha256,
                duration_s=fingerprint.duration_s,
            )
        recommendation = decide(
            review_mode=ReviewMode(inp.review_mode), quality_findings=findings, matches=[]
        )
        if recommendation.decision == "needs_review":
            await self.db.set_stage(
                inp.job_id,
                "awaiting_review",
                review_state=ReviewState.AWAITING_REVIEW.value,
                review_reasons=recommendation.reasons,
            )
        else:
            await self.db.set_stage(
                inp.job_id, "publishing", review_state=ReviewState.AUTO_APPROVED.value
            )
        return CheckSimilarityOutput(
            fingerprint_sha256=fingerprint.sha256 if fingerprint else "",
            fingerprint_items=len(fingerprint.items) if fingerprint else 0,
            matches=[],
            recommendation=recommendation,
        )
