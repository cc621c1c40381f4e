"""The deployment files (infra/deploy/) validate: compose against the compose-spec schema,
Kubernetes manifests (the base and each overlay, rendered) strictly against Kubernetes' OpenAPI
models, KEDA objects against what the temporal scaler accepts; and every TUNESMITH_* they set
is a real setting, every probe reaches the health server, every grace period covers the
graceful shutdown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from kubernetes import client as k8s

from activities.models.cards import list_cards
from activities.models.settings import ModelSettings
from infra.settings import Settings
from schemas.names import CPU_TASK_QUEUE, gpu_task_queue
from schemas.takedown import TakedownSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy"
KUBE = DEPLOY / "kubernetes"
MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("batch/v1", "Job"): "V1Job",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
}  # fmt: skip
# KEDA's temporal scaler (keda.sh/docs/2.22/scalers/temporal/): the metadata it reads.
TEMPORAL_TRIGGER_KEYS = {
    "endpoint", "endpointFromEnv", "namespace", "taskQueue", "targetQueueSize",
    "activationTargetQueueSize", "queueTypes", "workerDeploymentName", "workerDeploymentBuildId",
    "includeRunningWorkflowCount", "workflowTaskQueueForCount", "minConnectTimeout", "unsafeSsl",
    "tlsServerName", "enableTLS",
}  # fmt: skip
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "idleReplicaCount", "minReplicaCount",
    "maxReplicaCount", "fallback", "advanced", "triggers", "initialCooldownPeriod",
}  # fmt: skip


def strict(value: Any, type_name: str, path: str) -> list[str]:
    """Problems of `value` as the OpenAPI type `type_name` (unknown fields included)."""
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name == "int" and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: {value!r} is not {type_name}"]
    if m := re.fullmatch(r"(?:list|List)\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, v in enumerate(value) for p in strict(v, m.group(1), f"{path}[{i}]")]
    if m := re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        item_type = m.group(1) or m.group(2)
        return [p for k, v in value.items() for p in strict(v, item_type, f"{path}.{k}")]
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}: unknown field {key!r} for {type_name}")
        else:
            problems += strict(item, model.openapi_types[by_json[key]], f"{path}.{key}")
    return problems


def validate_k8s(doc: dict[str, Any]) -> list[str]:
    kind, api = str(doc.get("kind")), str(doc.get("apiVersion"))
    where = f"{kind}/{doc.get('metadata', {}).get('name')}"
    if api == "keda.sh/v1alpha1":
        return validate_keda(doc, where)
    model = MODELS.get((api, kind))
    if model is None:
        return [f"{where}: no schema for {api} {kind}"]
    problems = strict(doc, model, where)
    if not problems:
        try:  # the models' own required-field checks
            k8s.ApiClient().deserialize(json.dumps(doc), model, "application/json")
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def validate_keda(doc: dict[str, Any], where: str) -> list[str]:
    spec = doc.get("spec", {})
    if doc["kind"] == "TriggerAuthentication":
        refs = spec.get("secretTargetRef", [])
        ok = refs and all(set(r) == {"parameter", "name", "key"} for r in refs)
        return [] if ok else [f"{where}: secretTargetRef entries need parameter, name, key"]
    if doc["kind"] != "ScaledObject":
        return [f"{where}: unexpected KEDA kind"]
    problems = [f"{where}: unknown spec field {k!r}" for k in set(spec) - SCALED_OBJECT_SPEC]
    if not spec.get("scaleTargetRef", {}).get("name") or not spec.get("triggers"):
        problems.append(f"{where}: scaleTargetRef.name and triggers are required")
    for trigger in spec.get("triggers", []):
        meta = trigger.get("metadata", {})
        problems += [f"{where}: trigger type {trigger.get('type')!r}"] * (
            trigger.get("type") != "temporal"
        )
        problems += [f"{where}: unknown temporal metadata {k!r}"
                     for k in set(meta) - TEMPORAL_TRIGGER_KEYS]  # fmt: skip
        problems += [f"{where}: metadata {k} must be a string"
                     for k, v in meta.items() if not isinstance(v, str)]  # fmt: skip
        if not {"endpoint", "taskQueue"} <= set(meta):
            problems.append(f"{where}: endpoint and taskQueue are required")
        if not set(meta.get("queueTypes", "workflow").split(",")) <= {"workflow", "activity"}:
            problems.append(f"{where}: queueTypes {meta['queueTypes']!r}")
    return problems


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render(directory: Path) -> list[dict[str, Any]]:
    """Kustomize's build for what our kustomizations use: resources (files or bases), JSON 6902
    patches by target kind/name, and the namespace."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        target = (directory / resource).resolve()
        docs += render(target) if target.is_dir() else load(target)
    for patch in kustomization.get("patches", []):
        ops = jsonpatch.JsonPatch(yaml.safe_load(patch["patch"]))
        selector = patch["target"]
        hits = [i for i, d in enumerate(docs) if d["kind"] == selector["kind"]
                and selector.get("name") in (None, d["metadata"]["name"])]  # fmt: skip
        assert hits, f"{directory}: patch target {selector} matches nothing"
        for i in hits:
            docs[i] = ops.apply(docs[i])
    if namespace := kustomization.get("namespace"):
        for d in docs:
            if d["kind"] != "Namespace":
                d["metadata"]["namespace"] = namespace
    return docs


BUILDS = {"base": KUBE / "base", "temporal-cloud": KUBE / "overlays" / "temporal-cloud"}


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_kubernetes_manifests_validate(build: str) -> None:
    docs = render(BUILDS[build])
    problems = [p for d in docs for p in validate_k8s(d)]
    assert not problems, "\n".join(problems)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    queues = {CPU_TASK_QUEUE} | {gpu_task_queue(card.id) for card in list_cards()}
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["metadata"]["taskQueue"] in queues, trigger
            if trigger["metadata"]["taskQueue"].startswith("tunesmith-gpu"):
                assert trigger["metadata"]["queueTypes"] == "activity"  # no workflows there
    assert {d["kind"] for d in docs} >= {"Deployment", "PodDisruptionBudget", "ScaledObject",
                                         "Job", "ConfigMap"}  # fmt: skip


def test_the_overlay_moves_temporal_and_its_scalers_to_the_cloud() -> None:
    docs = render(BUILDS["temporal-cloud"])
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["TUNESMITH_TEMPORAL_ADDRESS"].endswith(".tmprl.cloud:7233")
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        trigger = scaled["spec"]["triggers"][0]
        assert trigger["metadata"]["endpoint"] == config["TUNESMITH_TEMPORAL_ADDRESS"]
        assert trigger["authenticationRef"]["name"] == "tunesmith-temporal-cloud"


def test_probes_reach_the_health_server_and_grace_covers_the_shutdown() -> None:
    docs = render(BUILDS["base"])
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    port = int(config["TUNESMITH_HEALTH_PORT"])
    assert config["TUNESMITH_HEALTH_HOST"] == "0.0.0.0"
    for d in (d for d in docs if d["kind"] == "Deployment"):
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named["health"] == port
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert pod["terminationGracePeriodSeconds"] > float(env["TUNESMITH_GRACEFUL_SHUTDOWN_S"])
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_compose_file_validates_against_the_compose_spec() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
         "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("worker-cpu", "worker-gpu"):
        service = compose["services"][name]
        grace = int(service["stop_grace_period"].removesuffix("s"))
        assert grace > float(service["environment"]["TUNESMITH_GRACEFUL_SHUTDOWN_S"])
        assert service["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert compose["services"]["setup"]["entrypoint"] == ["tunesmith", "setup"]


def test_every_tunesmith_setting_they_name_exists() -> None:
    known = {f"TUNESMITH_{f.upper()}" for f in Settings.model_fields}
    known |= {f"TUNESMITH_{f.upper()}" for f in ModelSettings.model_fields}
    known |= {f"TUNESMITH_TAKEDOWN_{f.upper()}" for f in TakedownSettings.model_fields}
    named: dict[str, set[str]] = {}
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            for var in re.findall(r"TUNESMITH_[A-Z0-9_]+", path.read_text()):
                named.setdefault(var, set()).add(str(path.relative_to(ROOT)))
    unknown = {var: files for var, files in named.items() if var not in known}
    assert not unknown, unknown
    assert len(named) >= 15  # the check looked at real files


@pytest.mark.parametrize("image", ["cpu", "gpu"])
def test_images_run_the_state_free_worker_as_non_root(image: str) -> None:
    text = (DEPLOY / "docker" / f"{image}.Dockerfile").read_text()
    assert f'ENTRYPOINT ["tunesmith", "worker", "{image}"]' in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    for source in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, re.M):
        for part in source.split():
            assert (ROOT / part).exists(), f"{image}.Dockerfile copies missing {part}"


def test_the_validators_catch_what_a_cluster_would_refuse() -> None:
    deployment = next(d for d in render(BUILDS["base"]) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec/replica", "value": 2},  # a typo of a field
        {"op": "replace", "path": "/spec/replicas", "value": "two"},  # a wrong type
        {"op": "remove", "path": "/spec/template/spec/containers/0/name"},  # a required field
    ]
    broken = [jsonpatch.apply_patch(deployment, [op]) for op in ops]
    assert container["name"] == "worker"
    for doc in broken:
        assert validate_k8s(doc), doc["spec"]
    scaled = next(d for d in render(BUILDS["base"]) if d["kind"] == "ScaledObject")
    for op in (
        {"op": "add", "path": "/spec/triggers/0/metadata/taskQueu", "value": "x"},
        {"op": "replace", "path": "/spec/triggers/0/metadata/targetQueueSize", "value": 4},
        {"op": "replace", "path": "/spec/triggers/0/type", "value": "temporl"},
        {"op": "add", "path": "/spec/maxReplicas", "value": 3},
    ):
        assert validate_keda(jsonpatch.apply_patch(scaled, [op]), "so"), op
