"""Experiments: named traffic splits between variants, assigned deterministically per job.

A variant overrides request fields the platform versions: `model` (a model id), `template` (a
template version, `2` or `id@2`) or `profile` (the delivery profile, i.e. the postprocess
setting a request carries). A job's bucket is the hash of experiment name + job id, so the same
job (e.g. resubmitted under its idempotency key) always gets the same variant.

An experiment applies to a request only when every field its variants override is still open in
the request (no explicit `model`; a template named without a version; the default profile): a
caller's explicit choice is never overridden, and every arm draws from the same population.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Annotated, Any, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.request import DEFAULT_PROFILE, DEFAULT_TENANT, DeliveryProfileName

OVERRIDE_KEYS = ("model", "template", "profile")
_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_TEMPLATE_RE = re.compile(r"^([^@\s]+@)?[0-9]+$")
_PROFILES = frozenset(get_args(DeliveryProfileName))
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class ExperimentError(ValueError):
    """An experiment or variant definition is invalid."""


class Variant(BaseModel):
    """One arm of an experiment: a relative weight and the request fields it overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    weight: Annotated[float, Field(gt=0, le=1e6)]
    overrides: dict[str, str] = {}

    @field_validator("overrides")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if key not in OVERRIDE_KEYS:
                raise ValueError(f"cannot override {key!r}: one of {list(OVERRIDE_KEYS)}")
            if key == "model" and not _MODEL_RE.match(val):
                raise ValueError(f"{val!r} is not a model id")
            if key == "template" and not _TEMPLATE_RE.match(val):
                raise ValueError(f"template override {val!r}: a version (2) or id@version")
            if key == "profile" and val not in _PROFILES:
                raise ValueError(f"profile {val!r}: one of {sorted(_PROFILES)}")
        return value


class Experiment(BaseModel):
    """A named split of matching traffic between variants (weights are relative)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    variants: Annotated[list[Variant], Field(min_length=2, max_length=20)]
    tenant: str | None = None  # only this tenant's requests (None: every tenant)
    product: str | None = None  # only this product (None: every product)
    active: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be distinct: {names}")
        return self

    @property
    def override_keys(self) -> frozenset[str]:
        return frozenset(k for v in self.variants for k in v.overrides)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


class Assignment(BaseModel):
    """Which variant of which experiment a job got, and what that changed in its request."""

    model_config = ConfigDict(frozen=True)

    experiment: str
    variant: str
    overrides: dict[str, str] = {}


def parse_variant(spec: str) -> Variant:
    """`a:model=draft:0.5`, `b:model=x,profile=apple:1` or `control:0.5` (no override).

    Raises:
        ExperimentError: malformed spec or invalid override.
    """
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ExperimentError(f"variant {spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE]:WEIGHT")
    name, weight_text = parts[0], parts[-1]
    overrides: dict[str, str] = {}
    if len(parts) == 3:
        for item in filter(None, (p.strip() for p in parts[1].split(","))):
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise ExperimentError(f"variant {spec!r}: override {item!r} is not KEY=VALUE")
            overrides[key.strip()] = value.strip()
    try:
        weight = float(weight_text)
    except ValueError:
        raise ExperimentError(f"variant {spec!r}: weight {weight_text!r} is not a number") from None
    try:
        return Variant(name=name, weight=weight, overrides=overrides)
    except ValueError as exc:
        raise ExperimentError(f"variant {spec!r}: {_first_error(exc)}") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}".lstrip(": ")
    return str(exc)


def bucket(experiment_name: str, job_id: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment, job): sha256 of both, first 8 bytes."""
    digest = hashlib.sha256(f"{experiment_name}\x00{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_variant(experiment: Experiment, job_id: str) -> Variant:
    """The job's variant: its bucket placed on the cumulative (normalized) weights."""
    total = sum(v.weight for v in experiment.variants)
    point = bucket(experiment.name, job_id) * total
    upto = 0.0
    for v in experiment.variants:
        upto += v.weight
        if point < upto:
            return v
    return experiment.variants[-1]  # float rounding at the very top


def _effective_product(request: dict[str, Any]) -> str | None:
    product = request.get("product")
    if product:
        return str(product)
    return None if request.get("template") else "track"  # a template may pick the product


def _is_open(request: dict[str, Any], key: str) -> bool:
    if key == "model":
        return not request.get("model")
    if key == "template":
        template = request.get("template")
        return bool(template) and "@" not in str(template)
    if key == "profile":
        return request.get("profile") in (None, DEFAULT_PROFILE)
    return False


def applies_to(experiment: Experiment, request: dict[str, Any]) -> bool:
    """Is `request` in the experiment's population (active, filters match, fields open)?"""
    if not experiment.active:
        return False
    if experiment.tenant is not None and request.get("tenant", DEFAULT_TENANT) != experiment.tenant:
        return False
    if experiment.product is not None and _effective_product(request) != experiment.product:
        return False
    return all(_is_open(request, key) for key in experiment.override_keys)


def _override(request: dict[str, Any], key: str, value: str) -> None:
    if key == "template" and "@" not in value:
        value = f"{request['template']}@{value}"
    request[key] = value


def apply_experiments(
    request: dict[str, Any], job_id: str, experiments: Iterable[Experiment]
) -> tuple[dict[str, Any], list[Assignment]]:
    """Apply every matching experiment to a copy of `request` (a request dict, before
    validation and normalization); returns it with the job's assignments to record.

    Experiments are taken in the given order; one overriding a field an earlier one already
    set is skipped for this job, so each change is attributed to exactly one experiment.
    """
    out = dict(request)
    assignments: list[Assignment] = []
    taken: set[str] = set()
    for experiment in experiments:
        if not applies_to(experiment, request) or experiment.override_keys & taken:
            continue
        variant = assign_variant(experiment, job_id)
        for key, value in variant.overrides.items():
            _override(out, key, value)
        changed = {k: str(out[k]) for k in variant.overrides}
        taken |= experiment.override_keys
        assignments.append(Assignment(experiment=experiment.name, variant=variant.name,
                                      overrides=changed))  # fmt: skip
    return out, assignments
