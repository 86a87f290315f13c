"""Kubernetes manifests: every overlay renders (kubectl kustomize, offline), built-in kinds validate against the
Kubernetes 1.33 OpenAPI schemas shipped in the kubernetes-validate package (strict: unknown fields fail), and
the custom resources (KEDA ScaledObject / TriggerAuthentication, prometheus-operator ServiceMonitor) validate
against their CRD schemas as shipped in the cloudcoil-models-keda / cloudcoil-models-prometheus-operator
packages (pydantic models generated from the CRDs; made strict here). Plus the wiring between objects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from deploy_testkit import (
    DOCKER,
    K8S,
    OVERLAYS,
    containers,
    image_kind,
    is_finsentry_image,
    kustomize,
    pod_template,
    project_version,
    resolve_cli,
)

from finsentry.ingest.topics import DEFAULT_PARTITIONS, NEWS_RAW

KUBERNETES_VERSION = "1.33.0"
"""Oldest Kubernetes release the manifests target (CronJob timeZone is GA since 1.27)."""

BUILTIN_API_VERSIONS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}

RENDERED: dict[str, list[dict[str, Any]]] = {overlay: kustomize(K8S / "overlays" / overlay) for overlay in OVERLAYS}
BASE = kustomize(K8S / "base")


def _crd_models() -> dict[tuple[str, str], type]:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    return {
        ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): TriggerAuthentication,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
    }


CRD_MODELS = _crd_models()


def _strict(node: Any) -> Any:
    """Forbid properties a schema does not declare (the CRD structural schemas prune them on the server)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


def crd_errors(obj: dict[str, Any]) -> list[str]:
    """Schema errors of a custom resource against its CRD model's JSON schema (by alias = the CRD's field names)."""
    import jsonschema

    model = CRD_MODELS[(obj["apiVersion"], obj["kind"])]
    schema = _strict(model.model_json_schema(by_alias=True))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)
    ]


def builtin_errors(obj: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def objects_of(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in RENDERED[overlay] if o["kind"] == kind]


def by_name(overlay: str, kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects_of(overlay, kind) if o["metadata"]["name"] == name]
    return obj


def test_overlays_render():
    assert set(OVERLAYS) == {"dev", "prod", "prod-gpu"}
    kinds = {o["kind"] for o in RENDERED["prod"]}
    for kind in (
        "Deployment",
        "StatefulSet",
        "CronJob",
        "ConfigMap",
        "Secret",
        "Service",
        "ScaledObject",
        "ServiceMonitor",
    ):
        assert kind in kinds
    assert {o["kind"] for o in RENDERED["dev"]}.isdisjoint({"ScaledObject", "ServiceMonitor"})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_kinds_validate_against_the_kubernetes_schemas(overlay):
    checked = 0
    for obj in RENDERED[overlay]:
        if (obj["apiVersion"], obj["kind"]) in CRD_MODELS:
            continue
        assert builtin_errors(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("overlay", ["prod", "prod-gpu"])
def test_custom_resources_validate_against_their_crd_schemas(overlay):
    custom = [o for o in RENDERED[overlay] if (o["apiVersion"], o["kind"]) in CRD_MODELS]
    assert {o["kind"] for o in custom} == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}
    for obj in custom:
        assert crd_errors(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"
    unknown = [o["kind"] for o in RENDERED[overlay] if o["apiVersion"] not in BUILTIN_API_VERSIONS and o not in custom]
    assert unknown == [], "custom resources without a CRD schema to check them against"


def test_the_validators_reject_a_misspelt_field():
    deployment = copy.deepcopy(by_name("prod", "Deployment", "finsentry-scorer"))
    deployment["spec"]["replica"] = 3
    assert builtin_errors(deployment)
    scaled = copy.deepcopy(by_name("prod", "ScaledObject", "finsentry-scorer"))
    scaled["spec"]["maxReplicas"] = 3
    assert any("maxReplicas" in e for e in crd_errors(scaled))
    monitor = copy.deepcopy(objects_of("prod", "ServiceMonitor")[0])
    del monitor["spec"]["selector"]
    assert crd_errors(monitor)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_exist_in_deploy_docker_and_carry_the_project_version(overlay):
    for obj, container in containers(RENDERED[overlay]):
        assert is_finsentry_image(container["image"]), container["image"]
        kind, tag = image_kind(container["image"])
        assert (DOCKER / f"{kind}.Dockerfile").is_file(), f"{obj['metadata']['name']}: no {kind}.Dockerfile"
        assert tag == project_version()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_container_commands_are_real_finsentry_verbs(overlay):
    verbs = {}
    for obj, container in containers(RENDERED[overlay]):
        assert "command" not in container, "the image's ENTRYPOINT is finsentry; set args only"
        verbs[obj["metadata"]["name"]] = resolve_cli(container["args"])
    assert verbs == {
        "finsentry-scorer": ["scorer"],
        "finsentry-aggregator": ["aggregator"],
        "finsentry-relay": ["relay"],
        "finsentry-labels": ["labels", "consume"],
        "finsentry-retrain": ["model", "retrain"],
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_run_as_the_images_non_root_user_with_requests(overlay):
    for obj, container in containers(RENDERED[overlay]):
        pod = pod_template(obj)["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        requests = container["resources"]["requests"]
        assert "cpu" in requests and "memory" in requests, obj["metadata"]["name"]
        assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_services_probes_and_volumes_are_wired(overlay):
    objects = RENDERED[overlay]
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
        pod = w["spec"]["template"]["spec"]
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                if ports:  # a service with an HTTP endpoint is probed on it
                    assert c[probe]["httpGet"]["port"] in ports
                else:
                    assert probe not in c
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes
        claims = [
            v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v
        ]
        for claim in claims:
            by_name(overlay, "PersistentVolumeClaim", claim)
        if w["kind"] == "StatefulSet":
            assert by_name(overlay, "Service", w["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    for svc in objects_of(overlay, "Service"):
        selected = [
            w
            for w in workloads
            if svc["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert selected, f"Service {svc['metadata']['name']} selects no pods"
        container_ports = {
            p["name"] for w in selected for c in w["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= container_ports


def test_service_monitors_select_services_whose_names_are_the_rule_job_labels():
    for monitor in objects_of("prod", "ServiceMonitor"):
        matches = [
            s
            for s in objects_of("prod", "Service")
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"].get("labels", {}).items()
        ]
        assert len(matches) == 1, f"{monitor['metadata']['name']} selects {[s['metadata']['name'] for s in matches]}"
        (service,) = matches
        # prometheus-operator sets job = the Service name; alerts/alerting_rules.yml matches these names.
        assert service["metadata"]["name"] == monitor["metadata"]["name"]
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}


def test_scaled_object_targets_the_scorer_group_and_stays_within_the_partitions():
    (scaled,) = objects_of("prod", "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "finsentry-scorer"
    by_name("prod", "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    (trigger,) = scaled["spec"]["triggers"]
    scorer_env = by_name("prod", "ConfigMap", "finsentry-env")["data"]
    assert trigger["type"] == "kafka" and trigger["metadata"]["topic"] == NEWS_RAW
    assert trigger["metadata"]["consumerGroup"] == "finsentry-scorer"  # ingest.scorer.group_id default
    assert trigger["metadata"]["bootstrapServers"] == scorer_env["FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS"]
    assert (
        trigger["authenticationRef"]["name"]
        == by_name("prod", "TriggerAuthentication", "finsentry-kafka")["metadata"]["name"]
    )
    assert int(trigger["metadata"]["lagThreshold"]) > 0


def test_the_component_default_max_replicas_equals_the_default_news_raw_partitions():
    import yaml

    scaled = yaml.safe_load((K8S / "components" / "keda" / "scorer-scaledobject.yaml").read_text())
    assert scaled["spec"]["maxReplicaCount"] == DEFAULT_PARTITIONS[NEWS_RAW]


def test_registry_and_labels_live_on_the_shared_volume_the_scorers_read():
    config = by_name("prod", "ConfigMap", "finsentry-env")["data"]
    mounts = {}
    for obj, container in containers(RENDERED["prod"]):
        for m in container.get("volumeMounts", []):
            if m["name"] == "data":
                mounts[obj["metadata"]["name"]] = (m["mountPath"], m.get("readOnly", False))
    assert mounts == {
        "finsentry-scorer": ("/var/lib/finsentry/data", True),
        "finsentry-labels": ("/var/lib/finsentry/data", False),
        "finsentry-retrain": ("/var/lib/finsentry/data", False),
    }
    for key in ("FINSENTRY_MODEL__REGISTRY_DIR", "FINSENTRY_MODEL__RETRAIN__LABELS_DIR"):
        assert config[key].startswith("/var/lib/finsentry/data/")
    assert by_name("prod", "PersistentVolumeClaim", "finsentry-data")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_secrets_are_placeholders_only():
    for obj in BASE:
        if obj["kind"] == "Secret":
            assert "data" not in obj
            assert all(str(v).startswith("REPLACE-ME") for v in obj["stringData"].values()), obj["metadata"]["name"]
