"""The provenance record of a published asset: everything needed to explain where it came from."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from activities.catalog.chromaprint import ALGORITHM as FINGERPRINT_ALGORITHM
from schemas.jobs import PublishInput

PROVENANCE_SCHEMA = "tunesmith-provenance-1"


def build_record(inp: PublishInput, published: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A JSON-ready provenance record; `published` maps kind → {uri, sha256}."""
    gen, post, sim = inp.generated, inp.postprocessed, inp.similarity
    return {
        "schema": PROVENANCE_SCHEMA,
        "job_id": inp.job_id,
        "published_at": inp.published_at.isoformat(),
        "request": inp.request.model_dump(mode="json"),
        "request_sha256": inp.request_sha256,
        "revision_of": inp.request.revision_of,
        "controls": inp.tokens.model_dump(mode="json"),
        "controls_version": inp.tokens.controls_version,
        "model": {
            "id": gen.model_id,
            "version": gen.model_version,
            "weights_sha256": gen.weights_sha256,
            "card": f"tunesmith models show {gen.model_id}",
        },
        "seed": inp.tokens.seed,
        "postprocess_version": post.postprocess_version,
        "delivery_profile": post.profile,
        "quality": post.quality.model_dump(mode="json"),
        "template": {"id": inp.tokens.template_id, "version": inp.tokens.template_version}
        if inp.tokens.template_id
        else None,
        "inputs": {
            "raw_render": {"uri": gen.raw.uri, "sha256": gen.raw.sha256},
            "raw_parts": {
                name: {"uri": r.uri, "sha256": r.sha256} for name, r in gen.parts.items()
            },
            "midi": inp.request.midi,
            "reference": inp.tokens.reference.model_dump(mode="json")
            if inp.tokens.reference
            else None,
        },
        "manifest": post.manifest,
        "experiments": inp.experiments,
        "disclosure": {
            "watermark": post.watermark,
            "c2pa_signed_formats": post.c2pa_signed,
        },
        "outputs": published,
        "measurements": post.measurements.model_dump(mode="json"),
        "features": post.features.model_dump(mode="json", exclude={"embedding"})
        if post.features
        else None,
        "fingerprint": {
            "algorithm": FINGERPRINT_ALGORITHM,
            "sha256": sim.fingerprint_sha256,
            "items": sim.fingerprint_items,
        },
        "review": {
            "state": inp.review_state.value,
            "policy_version": sim.recommendation.policy_version,
            "reasons": inp.review_reasons,
            "decision": inp.review.model_dump(mode="json") if inp.review else None,
        },
        "ai_generated": True,
    }


def canonical_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, indent=2).encode()


def record_sha256(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()
