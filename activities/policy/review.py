"""Review policy as data: `policies/review-policy@N.toml` says which outputs auto-approve, need
one reviewer or two, how long a job waits and whom it is escalated to.

The latest version is used unless a version is named; a malformed file is a `PolicyError`
naming the file and the problem.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.jobs import QualityReport, ReviewRecommendation, RiskLevel, SimilarityMatch
from schemas.request import ReviewMode

POLICIES_DIR = Path(__file__).parent / "policies"
_FILE_RE = re.compile(r"^review-policy@(\d+)\.toml$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
ROLES = ("reviewer", "senior", "admin")  # in increasing order of authority


class PolicyError(ValueError):
    """A review policy file is missing or malformed."""


def parse_duration(value: str | float) -> float:
    """ "90s", "30m", "2h", "7d" or a number of seconds → seconds (> 0)."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 30m, 2h, 7d)")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, not {value!r}")
    return seconds


Seconds = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Escalation(_Strict):
    after_s: Seconds = Field(alias="after")
    target: Literal["senior", "admin", "webhook"]

    @field_validator("after_s", mode="before")
    @classmethod
    def _duration(cls, v: str | float) -> float:
        return parse_duration(v)


class PolicyRule(_Strict):
    """Conditions (all must hold; absent = any) and the approvals a matching job needs."""

    name: str = Field(min_length=1)
    approvals: Literal[0, 1, 2]
    stop: bool = False
    review_mode: list[ReviewMode] | None = None
    risk: list[RiskLevel] | None = None
    quality_below: Annotated[float, Field(gt=0, le=1)] | None = None
    has_findings: bool | None = None
    has_matches: bool | None = None
    tenants: list[str] | None = None
    products: list[str] | None = None

    @model_validator(mode="after")
    def _has_condition(self) -> PolicyRule:
        conditions = self.model_dump(exclude={"name", "approvals", "stop"}, exclude_none=True)
        if not conditions:
            raise ValueError(f"rule {self.name!r} has no condition")
        return self


class ReviewPolicy(_Strict):
    """One version of the review policy."""

    name: Literal["review-policy"]
    version: int = Field(ge=1)
    timeout_s: Seconds = Field(alias="timeout")
    escalation: Escalation | None = None
    rules: list[PolicyRule] = Field(default_factory=list)

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _duration(cls, v: str | float) -> float:
        return parse_duration(v)

    @property
    def policy_version(self) -> str:
        return f"{self.name}@{self.version}"


def policy_versions(directory: Path = POLICIES_DIR) -> dict[int, Path]:
    """Every policy file by version number."""
    found = {}
    for path in directory.glob("*.toml"):
        if m := _FILE_RE.match(path.name):
            found[int(m.group(1))] = path
    return found


def load_policy_file(path: Path) -> ReviewPolicy:
    """Parse and validate one policy file; its `version` must match the file name."""
    try:
        data = tomllib.loads(path.read_text())
        policy = ReviewPolicy.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"review policy {path.name}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise PolicyError(f"review policy {path.name} is invalid: {problems}") from None
    m = _FILE_RE.match(path.name)
    if m and int(m.group(1)) != policy.version:
        raise PolicyError(
            f"review policy {path.name} says version {policy.version}; the file name says "
            f"{m.group(1)}"
        )
    if policy.escalation and policy.escalation.after_s >= policy.timeout_s:
        raise PolicyError(f"review policy {path.name}: escalation.after must be under timeout")
    return policy


@cache
def load_policy(version: int | None = None, directory: Path = POLICIES_DIR) -> ReviewPolicy:
    """The policy of `version` (default: the latest file in `directory`)."""
    versions = policy_versions(directory)
    if not versions:
        raise PolicyError(f"no review-policy@N.toml file in {directory}")
    if version is None:
        version = max(versions)
    if version not in versions:
        raise PolicyError(f"no review policy version {version} (have {sorted(versions)})")
    return load_policy_file(versions[version])


def _rule_applies(
    rule: PolicyRule,
    *,
    review_mode: ReviewMode,
    quality: QualityReport,
    risk: RiskLevel,
    matches: list[SimilarityMatch],
    tenant: str | None,
    product: str | None,
) -> bool:
    checks = [
        rule.review_mode is None or review_mode in rule.review_mode,
        rule.risk is None or risk in rule.risk,
        rule.quality_below is None or quality.score < rule.quality_below,
        rule.has_findings is None or bool(quality.findings) == rule.has_findings,
        rule.has_matches is None or bool(matches) == rule.has_matches,
        rule.tenants is None or tenant in rule.tenants,
        rule.products is None or product in rule.products,
    ]
    return all(checks)


def _rule_reasons(
    rule: PolicyRule,
    *,
    quality: QualityReport,
    risk: RiskLevel,
    matches: list[SimilarityMatch],
) -> list[str]:
    """Human-readable reasons for a rule that sends a job to review."""
    reasons: list[str] = []
    if rule.review_mode is not None and ReviewMode.REQUIRED in rule.review_mode:
        reasons.append("human review required by the request")
    if rule.has_findings:
        reasons += [f"quality {quality.score:.2f}: {f}" for f in quality.findings]
    if rule.quality_below is not None:
        reasons.append(f"quality score {quality.score:.2f} under {rule.quality_below}")
    if rule.risk is not None and risk != "clear":
        reasons.append(f"similarity risk {risk}")
    if rule.has_matches:
        reasons += [
            f"similar to catalog recording {m.title or m.recording_id} ({m.method}, score "
            f"{m.score:.2f}, at {m.query_offset_s:.1f} s)"
            for m in matches
        ]
    return reasons or [f"policy rule {rule.name!r}"]


def decide(
    *,
    review_mode: ReviewMode,
    quality: QualityReport,
    risk: RiskLevel,
    matches: list[SimilarityMatch],
    tenant: str | None = None,
    product: str | None = None,
    policy: ReviewPolicy | None = None,
) -> ReviewRecommendation:
    """Apply the review policy (default: the latest version) to one checked output.

    A `block` similarity risk never auto-publishes: it always goes to a human with the reason.
    """
    policy = policy or load_policy()
    required = 0
    reasons: list[str] = []
    for rule in policy.rules:
        if not _rule_applies(rule, review_mode=review_mode, quality=quality, risk=risk,
                             matches=matches, tenant=tenant, product=product):  # fmt: skip
            continue
        if rule.approvals > 0:
            new = _rule_reasons(rule, quality=quality, risk=risk, matches=matches)
            reasons += [r for r in new if r not in reasons]
        required = max(required, rule.approvals)
        if rule.stop:
            break
    if risk == "block" and required == 0:
        required = 1
        reasons.append("similarity risk block")
    if required == 2:
        reasons.append("needs 2 approvals from different reviewers")
    esc = policy.escalation
    return ReviewRecommendation(
        decision="needs_review" if required else "auto_approve",
        reasons=reasons if required else [],
        policy_version=policy.policy_version,
        required_approvals=required,
        review_timeout_s=policy.timeout_s if required else None,
        escalate_after_s=esc.after_s if esc and required else None,
        escalation_target=esc.target if esc and required else None,
    )
