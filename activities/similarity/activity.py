"""The `check_similarity` activity (CPU queue): fingerprint, catalog matching, review decision."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.catalog.chromaprint import (
    ChromaprintUnavailableError,
    Fingerprint,
    FingerprintError,
    fingerprint_file,
)
from activities.catalog.melody import MelodyProfile
from activities.catalog.store import CatalogDB
from activities.policy.review import POLICIES_DIR, decide, load_policy
from activities.similarity.checker import SimilarityChecker, profile_file
from activities.similarity.store import record_check
from infra.db import Database
from infra.store import ObjectStore
from schemas import names
from schemas.errors import MISSING_DEPENDENCY
from schemas.jobs import (
    CheckSimilarityInput,
    CheckSimilarityOutput,
    ReviewState,
    RiskLevel,
    SimilarityMatch,
)


class SimilarityActivities:
    def __init__(self, store: ObjectStore, db: Database, policy_dir: Path | None = None) -> None:
        self.store = store
        self.db = db
        self.policy_dir = policy_dir or POLICIES_DIR  # review policies (settings.review_policy_dir)

    def _analyse(
        self, inp: CheckSimilarityInput, tmp: Path
    ) -> tuple[Fingerprint, MelodyProfile | None]:
        path = self.store.download(inp.master.uri, tmp / "master.wav")
        return fingerprint_file(path), profile_file(path)

    @activity.defn(name=names.CHECK_SIMILARITY)
    async def check_similarity(self, inp: CheckSimilarityInput) -> CheckSimilarityOutput:
        """Match the master against the catalog (fingerprint + melody), then apply the policy.

        A `block` risk (a fingerprint-verified copy) always goes to a human.
        """
        quality = inp.quality
        profile: MelodyProfile | None = None
        try:
            with tempfile.TemporaryDirectory(prefix="tunesmith-sim-") as tmp:
                fingerprint, profile = await asyncio.to_thread(self._analyse, inp, Path(tmp))
        except ChromaprintUnavailableError as exc:
            raise ApplicationError(str(exc), type=MISSING_DEPENDENCY, non_retryable=True) from None
        except FingerprintError as exc:
            # Unfingerprintable output cannot be checked against the catalog: a human must.
            quality = quality.model_copy(
                update={"findings": [*quality.findings, f"no fingerprint: {exc}"]}
            )
            fingerprint = None
        if fingerprint is not None:
            await self.db.upsert_fingerprint(
                inp.job_id,
                algorithm=fingerprint.algorithm,
                items=fingerprint.items,
                sha256=fingerprint.sha256,
                duration_s=fingerprint.duration_s,
            )
        report = await SimilarityChecker(CatalogDB(self.db.pool)).check(
            fingerprint.items if fingerprint else [], profile
        )
        matches: list[SimilarityMatch] = report.matches
        risk: RiskLevel = report.risk
        job = await self.db.get_job(inp.job_id)
        recommendation = decide(
            review_mode=inp.review_mode, quality=quality, risk=risk, matches=matches,
            tenant=job["tenant"] if job else None, product=job["product"] if job else None,
            policy=load_policy(directory=self.policy_dir),
        )  # fmt: skip
        result = CheckSimilarityOutput(
            fingerprint_sha256=fingerprint.sha256 if fingerprint else "",
            fingerprint_items=len(fingerprint.items) if fingerprint else 0,
            matches=matches,
            risk=risk,
            recommendation=recommendation,
            risk_reasons=report.reasons,
        )
        # Stored with the job (the history is gone after retention), before the stage moves
        # on: whoever sees the job awaiting review can read its matches.
        await record_check(self.db, inp.job_id, result)
        # The stage is the workflow's: it named one for either recommendation.
        if recommendation.decision == "needs_review":
            await self.db.set_stage(
                inp.job_id,
                inp.stage_if_review.value,
                review_state=ReviewState.AWAITING_REVIEW.value,
                review_reasons=recommendation.reasons,
            )
        else:
            await self.db.set_stage(
                inp.job_id,
                inp.stage_if_auto_approved.value,
                review_state=ReviewState.AUTO_APPROVED.value,
            )
        return result
