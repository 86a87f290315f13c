"""Helpers for the static checks of ``deploy/``: parse Dockerfiles, compose and rendered Kubernetes manifests,
resolve ``finsentry`` command lines, and map ``FINSENTRY_*`` env vars onto the settings models.

Nothing here runs Docker or a cluster (neither exists on the CI machine); ``kubectl kustomize`` renders the
overlays offline.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tomllib
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from finsentry.common.paths import REPO_ROOT
from finsentry.settings import ENV_PREFIX, Settings, load_settings

DEPLOY = REPO_ROOT / "deploy"
DOCKER = DEPLOY / "docker"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
"""Kustomize overlays under deploy/k8s/overlays (dev, prod, prod-gpu)."""

FINSENTRY_IMAGE_PREFIX = "finsentry-"
"""finsentry's own images are ``finsentry-<kind>:<version>``, built from ``deploy/docker/<kind>.Dockerfile``."""


def project_version() -> str:
    """``project.version`` from pyproject.toml (the tag of finsentry's images)."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


# --- Dockerfiles ---------------------------------------------------------------------------------------------


@dataclass
class Dockerfile:
    """A parsed Dockerfile: instructions as (KEYWORD, argument text) with continuations joined, and ARG defaults."""

    path: Path
    instructions: list[tuple[str, str]]
    args: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, path: Path) -> Dockerfile:
        """Parse ``path``; comment lines are dropped, ``\\`` continuations joined."""
        logical, buf = [], ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not buf and (not line or line.startswith("#")):
                continue
            if buf and line.startswith("#"):
                continue
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            logical.append(buf + line)
            buf = ""
        instructions = []
        for line in logical:
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        args = {}
        for keyword, rest in instructions:
            if keyword == "ARG" and "=" in rest:
                name, _, default = rest.partition("=")
                args[name.strip()] = default.strip().strip('"')
        return cls(path, instructions, args)

    def all(self, keyword: str) -> list[str]:
        """Arguments of every ``keyword`` instruction, in order."""
        return [rest for k, rest in self.instructions if k == keyword]

    def base_images(self) -> list[str]:
        """Images of the FROM lines, ``${ARG}`` replaced by the ARG defaults (stage names dropped)."""
        out = []
        for rest in self.all("FROM"):
            image = rest.split()[0]
            for name, value in self.args.items():
                image = image.replace("${" + name + "}", value)
            out.append(image)
        return out

    def env(self) -> dict[str, str]:
        """The ENV variables the image sets (``KEY=VALUE`` pairs, shell-style quoting)."""
        out = {}
        for rest in self.all("ENV"):
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                out[key] = value
        return out

    def copy_sources(self) -> list[str]:
        """Source paths of COPY instructions that read the build context (not ``--from=`` stages)."""
        out = []
        for rest in self.all("COPY"):
            parts = rest.split()
            if any(p.startswith("--from") for p in parts):
                continue
            out.extend(p for p in parts[:-1] if not p.startswith("--"))
        return out

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec) form of the last ``keyword`` (ENTRYPOINT / CMD) as a list."""
        import json

        return json.loads(self.all(keyword)[-1])


def dockerfiles() -> dict[str, Dockerfile]:
    """``kind`` -> parsed ``deploy/docker/<kind>.Dockerfile`` (cpu, gpu, train)."""
    return {p.name.removesuffix(".Dockerfile"): Dockerfile.parse(p) for p in sorted(DOCKER.glob("*.Dockerfile"))}


def dockerignore_allows(ignore_file: Path, path: str) -> bool:
    """Whether ``path`` (relative to the context root) is sent to the build by a ``.dockerignore`` file.

    Implements the subset the deploy files use: patterns are paths or ``*`` / ``**`` globs, the last matching
    pattern wins, ``!`` re-includes, a pattern matching a parent folder matches everything below it.
    """
    from fnmatch import fnmatch

    allowed = True
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in ignore_file.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch(p, pattern[3:]) for p in parts)
        else:
            hit = any(fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            allowed = negate
    return allowed


# --- compose -------------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml with YAML anchors and merge keys resolved."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def is_finsentry_image(image: str) -> bool:
    """True for ``finsentry-<kind>[:tag]`` with or without a registry prefix."""
    return image.rsplit("/", 1)[-1].startswith(FINSENTRY_IMAGE_PREFIX)


def image_kind(image: str) -> tuple[str, str]:
    """(kind, tag) of a finsentry image reference, e.g. ``registry/x/finsentry-cpu:0.1.0`` -> (cpu, 0.1.0)."""
    name, _, tag = image.rsplit("/", 1)[-1].partition(":")
    return name.removeprefix(FINSENTRY_IMAGE_PREFIX), tag


# --- Kubernetes ----------------------------------------------------------------------------------------------


def kubectl() -> str:
    """Path of ``kubectl`` (for its built-in kustomize).

    Raises:
        FileNotFoundError: kubectl is not installed (it ships with the machine image; see docs/deploy.md).
    """
    path = shutil.which("kubectl")
    if path is None:
        raise FileNotFoundError("kubectl is needed to render deploy/k8s (kubectl kustomize); install kubectl")
    return path


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization directory with ``kubectl kustomize`` (offline) into a list of objects.

    Raises:
        subprocess.CalledProcessError: kustomize failed (its stderr is in the exception).
    """
    out = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
"""Where each workload kind keeps its pod template."""


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload object, or None for other kinds."""
    path = POD_TEMPLATE_PATHS.get(obj.get("kind", ""))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node[key]
    return node


def container_env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """The environment a container gets from ``envFrom`` ConfigMaps/Secrets and ``env`` (values resolved from
    the rendered ConfigMaps and Secrets; ``stringData`` and base64 ``data`` both read).

    Raises:
        KeyError: a referenced ConfigMap / Secret or key is not in ``objects`` and not marked optional.
    """
    import base64

    def data_of(kind: str, name: str) -> dict[str, str]:
        for obj in objects:
            if obj.get("kind") == kind and obj["metadata"]["name"] == name:
                data = dict(obj.get("stringData") or {})
                for k, v in (obj.get("data") or {}).items():
                    data[k] = base64.b64decode(v).decode() if kind == "Secret" else v
                return data
        raise KeyError(f"{kind} {name} is referenced but not defined")

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                env.update(data_of(kind, source[key]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item.get("valueFrom", {})
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in ref:
                data = data_of(kind, ref[key]["name"])
                if ref[key]["key"] not in data:
                    raise KeyError(f"{kind} {ref[key]['name']} has no key {ref[key]['key']}")
                env[item["name"]] = data[ref[key]["key"]]
    return env


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload object, container) for every container and init container of every workload."""
    for obj in objects:
        template = pod_template(obj)
        if template is None:
            continue
        spec = template["spec"]
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            yield obj, c


# --- settings ------------------------------------------------------------------------------------------------


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X``, ``X | None``), or None for a leaf type."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None


def setting_for_env(name: str) -> str:
    """Dotted settings key of a ``FINSENTRY_<SECTION>__<KEY>`` variable, found by walking :class:`Settings`.

    >>> setting_for_env("FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS")
    'ingest.kafka.bootstrap_servers'

    Raises:
        KeyError: the name is not a settings field (the message names the first part that is not).
    """
    if not name.startswith(ENV_PREFIX):
        raise KeyError(f"{name} does not start with {ENV_PREFIX}")
    parts = name.removeprefix(ENV_PREFIX).lower().split("__")
    model: type[BaseModel] | None = Settings
    walked: list[str] = []
    for i, part in enumerate(parts):
        if model is None:
            raise KeyError(f"{name}: {'.'.join(walked)} is a value, it has no key {part!r}")
        info = model.model_fields.get(part)
        if info is None:
            where = ".".join(walked) or "the top level"
            raise KeyError(f"{name}: {where} has no setting {part!r} (known: {sorted(model.model_fields)})")
        walked.append(part)
        model = _model_class(info.annotation)
        if i == len(parts) - 1 and model is not None:
            raise KeyError(f"{name}: {'.'.join(walked)} is a section, not a setting")
    return ".".join(walked)


@contextmanager
def only_env(env: dict[str, str]) -> Iterator[None]:
    """Run with exactly ``env``'s ``FINSENTRY_*`` variables set (others removed), restoring them afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
        yield
    finally:
        for k in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[k]
        os.environ.update(saved)


def settings_from_env(env: dict[str, str]) -> Settings:
    """:func:`load_settings` with exactly the ``FINSENTRY_*`` variables of ``env`` (no config file).

    Raises:
        finsentry.settings.SettingsError: a value does not validate (the message names the key).
    """
    with only_env(env):
        return load_settings()


# --- the finsentry CLI ---------------------------------------------------------------------------------------


def resolve_cli(argv: list[str]) -> list[str]:
    """Parse ``finsentry ARGV`` with the real typer app, without running it; returns the verb path.

    >>> resolve_cli(["--log-level", "DEBUG", "config", "show"])
    ['config', 'show']
    >>> resolve_cli(["model", "--help"])
    ['model']

    ``--help`` is dropped before parsing (it would print and exit), so ``finsentry GROUP --help`` checks GROUP.

    Raises:
        click's UsageError (incl. NoSuchOption, BadParameter): no such verb, option or a bad argument.
    """
    import typer.main

    from finsentry.cli import app

    help_asked = "--help" in argv
    argv = [a for a in argv if a != "--help"]
    cmd = typer.main.get_command(app)
    if not argv and help_asked:
        return []
    ctx = cmd.make_context("finsentry", argv)
    path: list[str] = []
    while hasattr(cmd, "resolve_command"):
        rest = list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args)
        if not rest and help_asked:
            break  # `finsentry GROUP --help`: the group exists, nothing below it is named
        name, sub, rest = cmd.resolve_command(ctx, rest)
        path.append(name)
        if not rest and help_asked and hasattr(sub, "resolve_command"):
            break
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return path
