"""Static checks of deploy/docker: pinned bases, non-root, health checks, the right extras, what COPY reads."""

from __future__ import annotations

import re

import pytest
from deploy_testkit import DOCKER, REPO_ROOT, Dockerfile, dockerfiles, dockerignore_allows, resolve_cli

KINDS = ("cpu", "gpu", "train")
EXACT_TAG = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")
"""An image pinned to an exact version (x.y.z, optionally with a variant suffix and a digest)."""


@pytest.fixture(scope="module")
def files() -> dict[str, Dockerfile]:
    return dockerfiles()


def test_the_three_images_exist(files):
    assert sorted(files) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_base_images_are_pinned(files, kind):
    for image in files[kind].base_images():
        assert EXACT_TAG.match(image), f"{kind}.Dockerfile: base image {image} is not pinned to an exact version"


def test_gpu_base_is_cuda_runtime_with_cudnn(files):
    assert all(
        re.match(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$", i) for i in files["gpu"].base_images()
    )


@pytest.mark.parametrize("kind", KINDS)
def test_runs_as_non_root_with_a_healthcheck(files, kind):
    users = files[kind].all("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root"), f"{kind}: the last USER must be non-root"
    (check,) = files[kind].all("HEALTHCHECK")
    assert "healthcheck.py" in check and "CMD" in check


@pytest.mark.parametrize("kind", KINDS)
def test_entrypoint_is_finsentry_and_default_command_is_a_real_verb(files, kind):
    assert files[kind].exec_form("ENTRYPOINT") == ["finsentry"]
    resolve_cli(files[kind].exec_form("CMD"))  # raises on an unknown verb or option


@pytest.mark.parametrize("kind", KINDS)
def test_finsentry_commands_run_at_build_time_are_real_verbs(files, kind):
    runs = [r for r in files[kind].all("RUN") if r.startswith("finsentry ")]
    for run in runs:
        import shlex

        argv = [a for a in shlex.split(run.split(">")[0])[1:]]
        assert resolve_cli(argv)


def pip_installs(dockerfile: Dockerfile) -> str:
    return " ".join(r for r in dockerfile.all("RUN") if "pip install" in r)


def test_cpu_image_has_onnxruntime_and_no_torch(files):
    installs = pip_installs(files["cpu"])
    assert '".[cpu]"' in installs
    assert "torch" not in installs and "[gpu]" not in installs and "[train]" not in installs


def test_gpu_image_never_has_both_onnxruntime_packages(files):
    installs = pip_installs(files["gpu"])
    assert '".[gpu]"' in installs and "[cpu]" not in installs and "[train]" not in installs
    assert "pip show onnxruntime " in installs, "the GPU build must fail if the CPU package was pulled in"
    requested = " ".join(re.findall(r"pip install ([^&]*)", installs)).replace("onnxruntime-gpu", "ORT-GPU")
    assert "ORT-GPU" in requested
    assert not re.search(r"\bonnxruntime\b", requested), "the GPU image must not request the CPU onnxruntime"


def test_train_image_takes_torch_from_the_cpu_wheel_index(files):
    installs = pip_installs(files["train"])
    assert "download.pytorch.org/whl/cpu" in files["train"].args["TORCH_INDEX"]
    assert '"torch==${TORCH_VERSION}"' in installs and '".[train]"' in installs


@pytest.mark.parametrize("kind", KINDS)
def test_copy_sources_exist_and_pass_the_dockerignore(files, kind):
    ignore = DOCKER / f"{kind}.Dockerfile.dockerignore"
    assert ignore.is_file(), f"{ignore.name} keeps the build context small"
    for src in files[kind].copy_sources():
        assert (REPO_ROOT / src).exists(), f"{kind}.Dockerfile copies {src}, which does not exist"
        assert dockerignore_allows(ignore, src), f"{ignore.name} excludes {src}, which the Dockerfile copies"


@pytest.mark.parametrize("kind", ("cpu", "gpu"))
def test_serving_images_carry_every_file_a_model_load_verifies(files, kind):
    """Every Scorer.load checks the folder against its card (model/verify.py): an image without card.json, or
    without a file the card hashes, would refuse to start its scorer."""
    copied = set(files[kind].copy_sources())
    for name in ("model.onnx", "tokenizer.json", "labels.json", "card.json"):
        assert f"model/artifacts/current/{name}" in copied, f"{kind}.Dockerfile does not copy {name}"


def test_dockerignore_keeps_unneeded_files_out():
    ignore = DOCKER / "cpu.Dockerfile.dockerignore"
    for path in (".venv/bin/python", "runs/shipped/best.pt", "model/artifacts/current/model.fp32.onnx", "data/splits"):
        assert not dockerignore_allows(ignore, path), path
    assert dockerignore_allows(ignore, "model/artifacts/current/model.onnx")
    assert not dockerignore_allows(ignore, "finsentry/__pycache__/cli.cpython-311.pyc")


ORT_TOOLS = "(quantization|transformers|tools)"


def test_no_finsentry_module_needs_what_the_cpu_image_prunes(files):
    """The CPU image deletes pyarrow's Flight and S3 libraries and onnxruntime's C API library and Python model
    tools to stay under 600 MB; nothing that runs in that image may use them."""
    run = pip_installs(files["cpu"])
    for pruned in ("libarrow_flight.so*", "libarrow_s3.so*", "capi/libonnxruntime.so.*", '"$ort"/quantization'):
        assert pruned in run
    arrow_users, ort_tool_users = [], []
    for folder in ("finsentry", "common", "ingest", "model", "monitor", "alerts"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            text = path.read_text()
            name = str(path.relative_to(REPO_ROOT))
            if re.search(r"pyarrow\.flight|pyarrow import flight|S3FileSystem|[\"']s3://", text):
                arrow_users.append(name)
            uses_tools = re.search(
                rf"onnxruntime\.{ORT_TOOLS}|from onnxruntime import {ORT_TOOLS}",
                text,
            )
            # fine in a module that needs the training extra (onnx / torch are not in the CPU image either)
            if uses_tools and not re.search(r"^\s*(import|from) (onnx|torch)\b", text, re.MULTILINE):
                ort_tool_users.append(name)
    assert arrow_users == [], f"these modules use Arrow Flight or S3, which the CPU image removes: {arrow_users}"
    assert ort_tool_users == [], f"these modules use onnxruntime's model tools at run time: {ort_tool_users}"
