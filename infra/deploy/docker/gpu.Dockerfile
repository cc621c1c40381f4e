# GPU worker: generate_audio for the models in TUNESMITH_SERVED_MODELS, weights mounted at
# TUNESMITH_MODELS_DIR. Build from the repository root:
#   docker build -f infra/deploy/docker/gpu.Dockerfile -t tunesmith-gpu .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv musescore-general-soundfont-small libsndfile1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY schemas schemas
COPY workflows workflows
COPY activities activities
COPY workers workers
COPY infra infra
COPY tunesmith tunesmith
# The lock pins the CPU torch wheel for CI; the image installs the CUDA build of the same
# version instead, then the `models` extra around it.
RUN uv venv --python python3.11 .venv \
 && uv pip install --python .venv torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 \
 && uv pip install --python .venv ".[models]"

RUN useradd --system --uid 10001 --home-dir /app tunesmith
USER 10001
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 \
    TUNESMITH_HOME=/tmp/tunesmith TUNESMITH_HEALTH_PORT=9464 TUNESMITH_HEALTH_HOST=0.0.0.0 \
    TUNESMITH_TORCH_DEVICE=cuda TUNESMITH_MODELS_DIR=/models
EXPOSE 9464
ENTRYPOINT ["tunesmith", "worker", "gpu"]
