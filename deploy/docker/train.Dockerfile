# syntax=docker/dockerfile:1.7
# finsentry training image: torch (CPU wheel), transformers, optimum-onnx; runs retraining and export.
#   docker build -f deploy/docker/train.Dockerfile -t finsentry-train:0.1.0 .
#   docker run -v finsentry-registry:/var/lib/finsentry/registry finsentry-train:0.1.0 model retrain
# The sources and data are installed editable under /opt/finsentry/src, so the repository-relative defaults
# (data/splits, model/configs, model/artifacts/current) resolve as in a clone.
# Pin the base by digest in production: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE}
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 finsentry \
 && useradd --system --uid 10001 --gid finsentry --home-dir /var/lib/finsentry --create-home finsentry
WORKDIR /opt/finsentry/src
# torch first, from the CPU wheel index: a plain `torch` requirement would pull the multi-GB CUDA build.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-compile --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY finsentry/ finsentry/
COPY common/ common/
COPY ingest/ ingest/
COPY model/ model/
COPY monitor/ monitor/
COPY alerts/ alerts/
COPY data/ data/
COPY deploy/docker/healthcheck.py /opt/finsentry/healthcheck.py
RUN /opt/venv/bin/pip install --no-compile -e ".[train]" \
 && /opt/venv/bin/finsentry model --help > /dev/null
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FINSENTRY_MODEL__REGISTRY_DIR=/var/lib/finsentry/registry
USER 10001:10001
# Run folders (runs/...) and the registry are written here, not into the sources.
WORKDIR /var/lib/finsentry
HEALTHCHECK --interval=60s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/finsentry/healthcheck.py"]
ENTRYPOINT ["finsentry"]
CMD ["model", "--help"]
