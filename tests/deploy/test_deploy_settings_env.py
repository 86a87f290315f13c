"""Every FINSENTRY_* variable that deploy/ sets (Dockerfiles, compose, rendered Kubernetes overlays) is a real
setting, and each container's whole environment loads through finsentry.settings.load_settings."""

from __future__ import annotations

import pytest
from deploy_testkit import (
    K8S,
    OVERLAYS,
    compose,
    container_env,
    containers,
    dockerfiles,
    image_kind,
    is_finsentry_image,
    kustomize,
    setting_for_env,
    settings_from_env,
)

from finsentry.settings import SettingsError


def image_env(image: str) -> dict[str, str]:
    """FINSENTRY_* variables the finsentry image sets (its Dockerfile's ENV)."""
    kind, _ = image_kind(image)
    return {k: v for k, v in dockerfiles()[kind].env().items() if k.startswith("FINSENTRY_")}


def compose_environments() -> dict[str, dict[str, str]]:
    """service -> image ENV + compose environment, for the services that run a finsentry image."""
    out = {}
    for name, svc in compose()["services"].items():
        if is_finsentry_image(svc["image"]):
            out[f"compose:{name}"] = image_env(svc["image"]) | {k: str(v) for k, v in svc["environment"].items()}
    return out


def k8s_environments() -> dict[str, dict[str, str]]:
    """overlay:workload/container -> image ENV + the env Kubernetes gives the container."""
    out = {}
    for overlay in OVERLAYS:
        objects = kustomize(K8S / "overlays" / overlay)
        for obj, container in containers(objects):
            if is_finsentry_image(container["image"]):
                key = f"k8s:{overlay}:{obj['metadata']['name']}/{container['name']}"
                out[key] = image_env(container["image"]) | container_env(container, objects)
    return out


def all_environments() -> dict[str, dict[str, str]]:
    envs = {
        f"image:{kind}": {k: v for k, v in d.env().items() if k.startswith("FINSENTRY_")}
        for kind, d in dockerfiles().items()
    }
    return envs | compose_environments() | k8s_environments()


ENVIRONMENTS = all_environments()


def test_every_deployment_surface_was_collected():
    keys = set(ENVIRONMENTS)
    assert {"image:cpu", "image:gpu", "image:train", "compose:scorer", "compose:relay"} <= keys
    for overlay in ("dev", "prod", "prod-gpu"):
        for workload in ("finsentry-scorer/scorer", "finsentry-aggregator/aggregator", "finsentry-relay/relay"):
            assert f"k8s:{overlay}:{workload}" in keys
        assert f"k8s:{overlay}:finsentry-retrain/retrain" in keys
        assert f"k8s:{overlay}:finsentry-labels/labels" in keys


@pytest.mark.parametrize("where", sorted(ENVIRONMENTS))
def test_every_finsentry_variable_is_a_real_setting(where):
    env = ENVIRONMENTS[where]
    assert env, f"{where} sets no FINSENTRY_* variable"
    unknown = []
    for name in env:
        if name.startswith("FINSENTRY_"):
            try:
                setting_for_env(name)
            except KeyError as exc:
                unknown.append(str(exc))
    assert unknown == []


@pytest.mark.parametrize("where", sorted(ENVIRONMENTS))
def test_the_whole_environment_loads_through_load_settings(where):
    settings = settings_from_env(ENVIRONMENTS[where])
    env = ENVIRONMENTS[where]
    if "FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS" in env:
        assert settings.ingest.kafka.bootstrap_servers == env["FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS"]
    if "FINSENTRY_MODEL__PATH" in env:
        assert str(settings.model.path) == env["FINSENTRY_MODEL__PATH"]


def test_gpu_image_prefers_the_cuda_provider():
    settings = settings_from_env(ENVIRONMENTS["image:gpu"])
    assert settings.model.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_prod_kafka_security_is_sasl_ssl_with_secret_credentials():
    env = ENVIRONMENTS["k8s:prod:finsentry-scorer/scorer"]
    kafka = settings_from_env(env).ingest.kafka
    assert kafka.security_protocol == "SASL_SSL" and kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert kafka.sasl_password is not None and str(kafka.ssl_cafile).startswith("/etc/finsentry/kafka-tls/")


def test_images_listen_on_all_container_interfaces_while_the_code_default_stays_loopback():
    image = settings_from_env(ENVIRONMENTS["image:cpu"])
    assert (image.ingest.scorer.metrics_host, image.monitor.http_host, image.alerts.relay_host) == ("0.0.0.0",) * 3
    default = settings_from_env({})
    assert default.monitor.http_host == "127.0.0.1"


def test_the_checks_catch_a_misspelt_variable_and_a_bad_value():
    with pytest.raises(KeyError, match="bootstrap_server'"):
        setting_for_env("FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVER")
    with pytest.raises(KeyError, match="section"):
        setting_for_env("FINSENTRY_MONITOR")
    with pytest.raises(SettingsError, match="security_protocol"):
        settings_from_env({"FINSENTRY_INGEST__KAFKA__SECURITY_PROTOCOL": "SASL_TLS"})
