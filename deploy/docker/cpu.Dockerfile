# syntax=docker/dockerfile:1.7
# finsentry CPU image: ONNX Runtime (CPU), no torch. One image for every service, chosen by command:
#   docker run finsentry-cpu:0.1.0 scorer | aggregator | relay | replay FILE... | broker | score TEXT | config show
# Build from the repository root (this file's .dockerignore sits beside it, BuildKit picks it up):
#   docker build -f deploy/docker/cpu.Dockerfile -t finsentry-cpu:0.1.0 .
# Size target < 600 MB: python slim (~130 MB) + the pruned venv (384 MB measured) + the INT8 model (47 MB).
# Pin the base by digest in production: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY finsentry/ finsentry/
COPY common/ common/
COPY ingest/ ingest/
COPY model/ model/
COPY monitor/ monitor/
COPY alerts/ alerts/
# Pruned to stay under 600 MB (sizes measured from `pip install .[cpu]` on Python 3.11, see docs/deploy.md):
# - onnxruntime's C/C++ API library libonnxruntime.so (35 MB; the Python binding links ONNX Runtime in
#   itself) and its Python model tools (quantization, transformers, tools: 4 MB; used only by
#   `finsentry model export`, which needs torch and onnx from the training image anyway);
# - pyarrow's Arrow Flight (RPC, 34 MB) and S3 (17 MB) libraries, headers and sources: finsentry uses pyarrow
#   only for the label store's local Parquet files (tests/deploy checks nothing imports flight or S3);
# - hf-xet (11 MB): the Hugging Face Hub download accelerator; the tokenizer is loaded from a file;
# - test folders and bytecode caches (never imported; the root filesystem may be read-only anyway);
# - pip and setuptools, once the venv is built.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-compile ".[cpu]" \
 && /opt/venv/bin/pip uninstall -y hf-xet \
 && ort="$(/opt/venv/bin/python -c 'import os, onnxruntime; print(os.path.dirname(onnxruntime.__file__))')" \
 && rm -rf "$ort"/capi/libonnxruntime.so.* "$ort"/quantization "$ort"/transformers "$ort"/tools \
 && arrow="$(/opt/venv/bin/python -c 'import os, pyarrow; print(os.path.dirname(pyarrow.__file__))')" \
 && rm -rf "$arrow"/include "$arrow"/src "$arrow"/libarrow_flight.so* "$arrow"/libarrow_python_flight.so* \
           "$arrow"/_flight.*.so "$arrow"/libarrow_s3.so* \
 && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
 && /opt/venv/bin/python -c "import onnxruntime, tokenizers, pyarrow.parquet, pyarrow.dataset, pandas" \
 && /opt/venv/bin/finsentry --help > /dev/null \
 && /opt/venv/bin/pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 finsentry \
 && useradd --system --uid 10001 --gid finsentry --home-dir /var/lib/finsentry --create-home finsentry
COPY --from=build /opt/venv /opt/venv
# The shipped CPU artifact: dynamic INT8 model.onnx, tokenizer, label spaces and the card every load is verified
# against (file hashes, reference logits; GPU variants stay out).
COPY model/artifacts/current/model.onnx model/artifacts/current/tokenizer.json model/artifacts/current/labels.json model/artifacts/current/card.json /opt/finsentry/model/
COPY data/stocknet_tweets/StockTable.tsv /opt/finsentry/data/StockTable.tsv
COPY deploy/docker/healthcheck.py /opt/finsentry/healthcheck.py
# Settings (env FINSENTRY_<SECTION>__<KEY>): the model and company table inside the image, services listen on
# all interfaces of the container (Prometheus and Alertmanager reach them over the container network).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FINSENTRY_MODEL__PATH=/opt/finsentry/model \
    FINSENTRY_MODEL__REGISTRY_DIR=/var/lib/finsentry/registry \
    FINSENTRY_INGEST__COMPANY_TABLE=/opt/finsentry/data/StockTable.tsv \
    FINSENTRY_INGEST__SCORER__METRICS_HOST=0.0.0.0 \
    FINSENTRY_INGEST__REPLAY__PROGRESS=false \
    FINSENTRY_MONITOR__HTTP_HOST=0.0.0.0 \
    FINSENTRY_ALERTS__RELAY_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/finsentry
# Smoke test at build time: ONNX Runtime, tokenizer and the model load in the final image, as the service user.
RUN finsentry score "Shares rose after the earnings beat" > /dev/null
# scorer /metrics, monitor HTTP (metrics, API, dashboard), relay webhook + /metrics
EXPOSE 8601 8600 8700
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/finsentry/healthcheck.py"]
ENTRYPOINT ["finsentry"]
CMD ["--help"]
