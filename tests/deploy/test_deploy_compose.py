"""Static checks of deploy/docker-compose.yml: the Compose Specification (compose-spec), references, topics,
mounts, images, finsentry verbs, and the Prometheus / Alertmanager configs it mounts (promtool, amtool)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_testkit import (
    COMPOSE_FILE,
    DEPLOY,
    DOCKER,
    compose,
    image_kind,
    is_finsentry_image,
    project_version,
    resolve_cli,
)

from finsentry.ingest.topics import DEFAULT_PARTITIONS

EXACT_TAG = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(scope="module")
def spec() -> dict:
    return compose()


@pytest.fixture(scope="module")
def services(spec) -> dict:
    return spec["services"]


def test_compose_file_follows_the_compose_specification(spec):
    from compose_spec import PyCompose

    # Anchors and merge keys are YAML, not Compose: validate what Compose sees after YAML resolved them.
    PyCompose.from_json(json.dumps(spec)).validate()


def test_the_validator_rejects_a_broken_compose_file(spec):
    from compose_spec import PyCompose

    broken = json.loads(json.dumps(spec))
    broken["services"]["scorer"]["deploy"]["replicas"] = "two"
    with pytest.raises(ValueError, match="u64"):
        PyCompose.from_json(json.dumps(broken))


def test_every_service_the_issue_names_is_there(services):
    for name in ("kafka", "kafka-init", "prometheus", "alertmanager", "grafana", "scorer", "aggregator", "relay"):
        assert name in services
    assert services["replay"]["profiles"] == ["demo"]
    assert services["scorer"]["deploy"]["replicas"] >= 2


def test_kafka_runs_in_kraft_mode_from_the_official_image(services):
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert not any("ZOOKEEPER" in k for k in env)
    import base64

    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "CLUSTER_ID must be a base64 UUID"


def test_topic_job_creates_every_topic_with_the_partitions_of_ingest_topics(services):
    script = services["kafka-init"]["command"][0]
    created = {m[1]: int(m[2]) for m in re.finditer(r"^create (\S+) (\d+)(?: .*)?$", script, re.MULTILINE)}
    assert created == DEFAULT_PARTITIONS


def test_topics_rebuilt_from_keep_more_than_the_lookback(services):
    """sentiment.keyed and sentiment.spikes were created with Kafka's 7-day default while the aggregator re-reads 14
    days (monitor.lookback_seconds) to rebuild: a restart rebuilt baselines from half their history."""
    from finsentry.ingest.topics import TOPIC_RETENTION_MS
    from finsentry.monitor.settings import MonitorSettings

    script = services["kafka-init"]["command"][0]
    retention = {
        m[1]: int(m[2]) for m in re.finditer(r"^create (\S+) \d+ --config retention\.ms=(\d+)$", script, re.MULTILINE)
    }
    assert retention == TOPIC_RETENTION_MS, retention
    lookback_ms = MonitorSettings().lookback_seconds * 1000
    assert all(ms > lookback_ms for ms in retention.values()), (retention, lookback_ms)


def test_depends_on_and_network_mode_name_real_services(services):
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        mode = svc.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.removeprefix("service:") in services, f"{name}: {mode}"


def test_third_party_images_are_pinned(services):
    for name, svc in services.items():
        if not is_finsentry_image(svc["image"]):
            assert EXACT_TAG.match(svc["image"]), f"{name}: {svc['image']} is not pinned to an exact version"


def test_finsentry_services_use_the_cpu_image_built_from_its_dockerfile(services):
    own = {n: s for n, s in services.items() if is_finsentry_image(s["image"])}
    assert set(own) == {"scorer", "aggregator", "relay", "replay"}
    for name, svc in own.items():
        kind, tag = image_kind(svc["image"])
        assert tag == project_version(), f"{name}: tag {tag} != project version"
        assert (DOCKER / f"{kind}.Dockerfile").is_file()
        assert (COMPOSE_FILE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == (
            DOCKER / f"{kind}.Dockerfile"
        )


@pytest.mark.parametrize("service", ["scorer", "aggregator", "relay", "replay"])
def test_finsentry_service_commands_are_real_verbs(services, service):
    path = resolve_cli(services[service]["command"])
    assert path == [service]


def test_bind_mounts_exist(services):
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"


def test_the_shipped_rules_and_alertmanager_config_are_mounted_from_alerts_not_copied(services):
    shipped = shipped_rule_files()
    mounted = {}
    for volume in services["prometheus"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("../alerts/"):
            mounted[source.removeprefix("../alerts/")] = target
    assert set(mounted) == set(shipped), "mount exactly the rule files alerts/prometheus.yml loads"
    assert all(t == f"/etc/prometheus/rules/{name}" for name, t in mounted.items())
    assert any(v.startswith("../alerts/alertmanager.yml:") for v in services["alertmanager"]["volumes"])
    assert not list(DEPLOY.rglob("*rules*.yml")) and not list(DEPLOY.rglob("alertmanager*.yml"))


def shipped_rule_files() -> list[str]:
    """Rule files that alerts/prometheus.yml (the reference config) loads."""
    import yaml

    return yaml.safe_load((DEPLOY / ".." / "alerts" / "prometheus.yml").read_text())["rule_files"]


def _mounted_tree(service: dict, tmp_path: Path) -> Path:
    """Lay the service's bind mounts out under tmp_path as the container sees them; returns that root."""
    for volume in service["volumes"]:
        source, _, target = volume.partition(":")
        target = target.split(":")[0]
        if not source.startswith("."):
            continue
        dest = tmp_path / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = (DEPLOY / source).resolve()
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copy(src, dest)
    return tmp_path


def _flag(service: dict, name: str) -> str:
    return next(a.split("=", 1)[1] for a in service["command"] if a.startswith(f"--{name}="))


def test_prometheus_config_passes_promtool_as_mounted(services, tmp_path):
    prometheus = services["prometheus"]
    root = _mounted_tree(prometheus, tmp_path)
    config = root / _flag(prometheus, "config.file").lstrip("/")
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(shipped_rule_files())} rule files found" in result.stdout


def test_alertmanager_config_passes_amtool_as_mounted(services, tmp_path):
    alertmanager = services["alertmanager"]
    root = _mounted_tree(alertmanager, tmp_path)
    config = root / _flag(alertmanager, "config.file").lstrip("/")
    result = subprocess.run(["amtool", "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_job_the_rules_ask_about():
    import yaml

    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    rules = "".join((DEPLOY / ".." / "alerts" / name).read_text() for name in shipped_rule_files())
    wanted = set(re.findall(r'job="([^"]+)"', rules))
    assert wanted and wanted <= jobs, f"jobs used by the rules but not scraped: {wanted - jobs}"


def test_relay_shares_alertmanagers_network_so_the_mounted_webhook_url_reaches_it(services):
    import yaml

    am = yaml.safe_load((DEPLOY / ".." / "alerts" / "alertmanager.yml").read_text())
    urls = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert urls and all(u.startswith("http://127.0.0.1:") for u in urls)
    assert services["relay"]["network_mode"] == "service:alertmanager"
    token_file = services["relay"]["environment"]["FINSENTRY_ALERTS__RELAY_TOKEN_FILE"]
    for name in ("relay", "alertmanager"):
        assert any(s["target"] == token_file for s in services[name]["secrets"])


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards_folder(services):
    import yaml

    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/finsentry.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert any(v.endswith(":" + path + ":ro") for v in services["grafana"]["volumes"])
    for dashboard in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        json.loads(dashboard.read_text())


def test_host_ports_bind_loopback_only(services):
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_shell_snippets_parse(services):
    for line in services["kafka-init"]["command"][0].splitlines():
        shlex.split(line)
