-- Audio features per artifact, queryable without downloading audio (`tunesmith search`).
-- pgvector ships with the embedded PostgreSQL (pgserver); an external server needs the extension.
CREATE EXTENSION IF NOT EXISTS vector;

ALTER TABLE artifacts
    ADD COLUMN loudness_range_lu double precision,
    ADD COLUMN tempo_bpm         double precision,
    ADD COLUMN musical_key       text,
    ADD COLUMN instruments       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN embedding         vector,          -- compared only within one embedding_model
    ADD COLUMN embedding_model   text;

CREATE INDEX artifacts_search_idx ON artifacts (kind, musical_key, tempo_bpm);
