"""The review policy is data: versioned TOML files, validated, latest by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.policy.review import (
    PolicyError,
    decide,
    load_policy,
    load_policy_file,
    parse_duration,
)
from schemas.jobs import QualityReport
from schemas.request import ReviewMode

GOOD = QualityReport()


def _write(tmp_path: Path, version: int, body: str) -> Path:
    path = tmp_path / f"review-policy@{version}.toml"
    path.write_text(f'name = "review-policy"\nversion = {version}\n' + body)
    return path


def test_the_shipped_policy_is_the_latest_and_keeps_the_old_rules() -> None:
    policy = load_policy()
    assert policy.policy_version == "review-policy@3"
    assert policy.timeout_s == 7 * 86400 and policy.escalation is not None
    rec = decide(review_mode=ReviewMode.AUTO, quality=GOOD, risk="clear", matches=[])
    assert rec.required_approvals == 0 and rec.decision == "auto_approve"
    rec = decide(review_mode=ReviewMode.REQUIRED, quality=GOOD, risk="clear", matches=[])
    assert rec.required_approvals == 1 and rec.policy_version == "review-policy@3"
    assert rec.review_timeout_s == 7 * 86400 and rec.escalation_target == "senior"


def test_tenants_and_products_set_approvals_and_stop_rules_override(tmp_path: Path) -> None:
    body = """timeout = "2h"
[escalation]
after = "30m"
target = "webhook"
[[rules]]
name = "trusted"
tenants = ["inhouse"]
risk = ["clear", "review"]
approvals = 0
stop = true
[[rules]]
name = "risky"
risk = ["review", "block"]
approvals = 1
[[rules]]
name = "stems of acme"
tenants = ["acme"]
products = ["stems"]
approvals = 2
"""
    policy = load_policy_file(_write(tmp_path, 4, body))
    assert policy.timeout_s == 7200 and policy.escalation and policy.escalation.after_s == 1800

    def rec(**kw: object):
        args: dict[str, object] = {"review_mode": ReviewMode.AUTO, "quality": GOOD,
                                   "risk": "review", "matches": [], "policy": policy}  # fmt: skip
        return decide(**(args | kw))  # type: ignore[arg-type]

    assert rec(tenant="inhouse").required_approvals == 0
    assert rec(tenant="other").required_approvals == 1
    two = rec(tenant="acme", product="stems")
    assert two.required_approvals == 2 and two.decision == "needs_review"
    assert "needs 2 approvals from different reviewers" in two.reasons
    assert two.escalation_target == "webhook" and two.escalate_after_s == 1800
    # A block risk never auto-publishes, even where a rule says 0.
    blocked = rec(tenant="inhouse", risk="block")
    assert blocked.required_approvals == 1 and "similarity risk block" in blocked.reasons


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('timeout = "soon"\n', "not a duration"),
        ('timeout = "1d"\n[[rules]]\nname = "x"\napprovals = 3\nrisk = ["block"]\n', "approvals"),
        ('timeout = "1d"\n[[rules]]\nname = "x"\napprovals = 1\n', "has no condition"),
        ('timeout = "1d"\n[[rules]]\nname = "x"\napprovals = 1\nrisky = ["block"]\n', "risky"),
        ('timeout = "1d"\n[escalation]\nafter = "2d"\ntarget = "senior"\n', "under timeout"),
        ('timeout = "1d"\n[escalation]\nafter = "1h"\ntarget = "boss"\n', "target"),
        ("timeout = = 1\n", "review-policy@5.toml"),
    ],
)
def test_a_malformed_policy_is_a_clear_error(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(PolicyError, match=needle):
        load_policy_file(_write(tmp_path, 5, body))


def test_version_selection(tmp_path: Path) -> None:
    _write(tmp_path, 1, 'timeout = "1h"\n')
    _write(tmp_path, 2, 'timeout = "2h"\n')
    assert load_policy(directory=tmp_path).version == 2
    assert load_policy(1, directory=tmp_path).timeout_s == 3600
    with pytest.raises(PolicyError, match="no review policy version 9"):
        load_policy(9, directory=tmp_path)
    bad = tmp_path / "review-policy@7.toml"
    bad.write_text('name = "review-policy"\nversion = 6\ntimeout = "1h"\n')
    with pytest.raises(PolicyError, match="file name says 7"):
        load_policy_file(bad)


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200
    assert parse_duration(30) == 30 and parse_duration("1.5d") == 129600
    with pytest.raises(ValueError):
        parse_duration("0s")
