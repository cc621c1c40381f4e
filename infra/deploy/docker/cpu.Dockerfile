# CPU worker: workflows + normalize, postprocess, similarity, review, publish, webhooks.
# Build from the repository root: docker build -f infra/deploy/docker/cpu.Dockerfile -t tunesmith-cpu .
FROM python:3.11-slim-bookworm

# Chromaprint (fingerprints), an MIT General MIDI SoundFont (draft renders in evaluations),
# libsndfile for audio I/O.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libchromaprint-tools musescore-general-soundfont-small libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY schemas schemas
COPY workflows workflows
COPY activities activities
COPY workers workers
COPY infra infra
COPY tunesmith tunesmith
RUN uv sync --frozen --no-dev

# State-free: every address, credential and key comes from TUNESMITH_* settings.
RUN useradd --system --uid 10001 --home-dir /app tunesmith
USER 10001
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 \
    TUNESMITH_HOME=/tmp/tunesmith TUNESMITH_HEALTH_PORT=9464 TUNESMITH_HEALTH_HOST=0.0.0.0
EXPOSE 9464
ENTRYPOINT ["tunesmith", "worker", "cpu"]
