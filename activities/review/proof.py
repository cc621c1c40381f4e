"""Proof of the reviewer: a decision is signed with the reviewer's own token.

The proof is HMAC-SHA256(token, job, reviewer, decision), so the token itself never travels in a
signal or update (workflow histories are readable by everyone with namespace access) and a proof
seen in one history approves nothing else: not another job, reviewer or decision.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

PROOF_PREFIX: Final = "v1:"
TOKEN_PREFIX: Final = "rvt_"


def new_token() -> str:
    """A fresh reviewer token (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def review_proof(token: str, *, job_id: str, reviewer: str, decision: str) -> str:
    """The proof a decision carries: `v1:` + hex HMAC-SHA256 of (job, reviewer, decision)."""
    message = f"tunesmith-review\n{job_id}\n{reviewer}\n{decision}".encode()
    return PROOF_PREFIX + hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def proof_matches(
    token: str, proof: str | None, *, job_id: str, reviewer: str, decision: str
) -> bool:
    if not proof:
        return False
    expected = review_proof(token, job_id=job_id, reviewer=reviewer, decision=decision)
    return hmac.compare_digest(expected.encode(), proof.encode())
