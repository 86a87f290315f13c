# syntax=docker/dockerfile:1.7
# finsentry GPU image: onnxruntime-gpu on an NVIDIA CUDA runtime base with cuDNN. Same services as the CPU image.
#   docker build -f deploy/docker/gpu.Dockerfile -t finsentry-gpu:0.1.0 .
#   docker run --gpus all finsentry-gpu:0.1.0 scorer
# onnxruntime-gpu 1.31.1 from PyPI is built for CUDA 13.x and cuDNN 9.x (its wheel metadata names the
# nvidia-*-cu13 / nvidia-cudnn-cu13 9.x libraries), so the base is CUDA 13.0 + cuDNN 9 on Ubuntu 24.04
# (Python 3.12). Only onnxruntime-gpu is installed: `.[gpu]`, never `.[cpu]` (both packages in one
# environment overwrite each other's files); the build fails if the CPU package got in.
# TensorRT (for TensorrtExecutionProvider and model.qdq.onnx) is optional: pass the pip requirement of the
# TensorRT libraries that this onnxruntime-gpu release was built against, e.g.
#   --build-arg TENSORRT_PIP="tensorrt-cu13-libs==<version from the onnxruntime release notes>"
# Pin the base by digest in production: --build-arg CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04@sha256:<digest>
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ARG ORT_GPU_VERSION=1.31.1
ARG TENSORRT_PIP=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY finsentry/ finsentry/
COPY common/ common/
COPY ingest/ ingest/
COPY model/ model/
COPY monitor/ monitor/
COPY alerts/ alerts/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-compile ".[gpu]" "onnxruntime-gpu==${ORT_GPU_VERSION}" ${TENSORRT_PIP} \
 && if /opt/venv/bin/pip show onnxruntime > /dev/null 2>&1; then echo "the CPU onnxruntime package got in" >&2; exit 1; fi \
 && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
 && /opt/venv/bin/finsentry --help > /dev/null \
 && /opt/venv/bin/pip uninstall -y pip

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 finsentry \
 && useradd --system --uid 10001 --gid finsentry --home-dir /var/lib/finsentry --create-home finsentry
COPY --from=build /opt/venv /opt/venv
# CPU INT8 (fallback), FP16 for the CUDA EP, static QDQ INT8 for TensorRT; Scorer.load picks by granted provider.
# The GPU variants (model.fp16.onnx for CUDA, model.qdq.onnx for TensorRT) are not in git (45-60 MB each):
# build them with `finsentry model export` from the training checkpoint and mount them into this folder;
# without them the scorer logs the fallback and runs model.onnx on the provider it gets.
COPY model/artifacts/current/model.onnx model/artifacts/current/tokenizer.json model/artifacts/current/labels.json model/artifacts/current/card.json /opt/finsentry/model/
COPY data/stocknet_tweets/StockTable.tsv /opt/finsentry/data/StockTable.tsv
COPY deploy/docker/healthcheck.py /opt/finsentry/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FINSENTRY_MODEL__PATH=/opt/finsentry/model \
    FINSENTRY_MODEL__PROVIDERS='["CUDAExecutionProvider", "CPUExecutionProvider"]' \
    FINSENTRY_MODEL__BATCH_SIZE=256 \
    FINSENTRY_MODEL__REGISTRY_DIR=/var/lib/finsentry/registry \
    FINSENTRY_INGEST__COMPANY_TABLE=/opt/finsentry/data/StockTable.tsv \
    FINSENTRY_INGEST__SCORER__METRICS_HOST=0.0.0.0 \
    FINSENTRY_INGEST__SCORER__MAX_BATCH_ITEMS=256 \
    FINSENTRY_INGEST__REPLAY__PROGRESS=false \
    FINSENTRY_MONITOR__HTTP_HOST=0.0.0.0 \
    FINSENTRY_ALERTS__RELAY_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/finsentry
# Smoke test: imports and model load (a build host has no GPU, so this one runs on the CPU fallback).
RUN finsentry score "Shares rose after the earnings beat" > /dev/null
EXPOSE 8601 8600 8700
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "/opt/finsentry/healthcheck.py"]
ENTRYPOINT ["finsentry"]
CMD ["--help"]
