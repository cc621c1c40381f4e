-- Jobs, artifacts with features, fingerprints, reviews, provenance, billing ledger, webhook outbox.
-- Every write the pipeline makes is an upsert on a key derived from job id + step, so a retried
-- or replayed activity never creates a second row.

CREATE TABLE jobs (
    job_id          text PRIMARY KEY,
    tenant          text NOT NULL,
    idempotency_key text,
    request         jsonb NOT NULL,
    request_sha256  text NOT NULL,
    controls        jsonb,
    prompt          text NOT NULL,
    tier            text NOT NULL,
    product         text NOT NULL,
    duration_s      double precision NOT NULL,
    seed            bigint NOT NULL,
    model_id        text,
    model_version   text,
    stage           text NOT NULL,
    review_state    text NOT NULL DEFAULT 'pending',
    review_reasons  jsonb NOT NULL DEFAULT '[]',
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (tenant, idempotency_key)
);
CREATE INDEX jobs_stage_idx ON jobs (stage, created_at DESC);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC);

CREATE TABLE artifacts (
    job_id          text NOT NULL REFERENCES jobs (job_id),
    kind            text NOT NULL,          -- raw | master_wav | master_mp3 | published_wav | ...
    uri             text NOT NULL,
    sha256          text NOT NULL,
    format          text NOT NULL,
    sample_rate     integer NOT NULL,
    channels        integer NOT NULL,
    duration_s      double precision NOT NULL,
    size_bytes      bigint NOT NULL,
    integrated_lufs double precision,
    true_peak_dbtp  double precision,
    features        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, kind)
);

CREATE TABLE fingerprints (
    job_id      text PRIMARY KEY REFERENCES jobs (job_id),
    algorithm   text NOT NULL,
    items       integer[] NOT NULL,         -- Chromaprint raw fingerprint (32-bit items)
    sha256      text NOT NULL,
    duration_s  double precision NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reviews (
    job_id      text PRIMARY KEY REFERENCES jobs (job_id),  -- one final decision per job
    outcome     text NOT NULL,              -- auto_approved | approved | rejected | expired
    reviewer    text,
    note        text,
    reasons     jsonb NOT NULL DEFAULT '[]',
    decided_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE provenance (
    job_id      text PRIMARY KEY REFERENCES jobs (job_id),
    record      jsonb NOT NULL,
    sha256      text NOT NULL,
    uri         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger (
    id           bigserial PRIMARY KEY,
    job_id       text NOT NULL REFERENCES jobs (job_id),
    tenant       text NOT NULL,
    kind         text NOT NULL,             -- e.g. generation
    amount_cents integer NOT NULL,
    audio_seconds double precision NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, kind)
);

CREATE TABLE webhook_outbox (
    id              bigserial PRIMARY KEY,
    job_id          text NOT NULL REFERENCES jobs (job_id),
    event           text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,   -- job id + event: receivers dedupe on it
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
