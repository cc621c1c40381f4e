-- The copyright catalog: reference recordings, their Chromaprint fingerprints with an inverted
-- index on item values, and the beat-synchronous chroma the melody detector compares.

CREATE TABLE catalog_recordings (
    id              serial PRIMARY KEY,        -- compact key for the index rows
    recording_id    text NOT NULL UNIQUE,      -- sha256 of the file bytes: ingest is idempotent
    title           text,
    owner           text,
    licence         text,
    source_path     text NOT NULL,
    duration_s      double precision NOT NULL,
    fingerprint     integer[] NOT NULL,        -- Chromaprint raw items (signed 32-bit)
    melody          bytea,                     -- float32 (beats × 13): beat time + 12 chroma
    melody_beats    integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per distinct-run item: lookups probe only the query's item values.
CREATE TABLE catalog_fingerprint_index (
    item_key        integer NOT NULL,
    recording       integer NOT NULL REFERENCES catalog_recordings (id) ON DELETE CASCADE,
    position        integer NOT NULL
);
-- Covering index: a lookup is an index-only scan returning (key, recording, position).
CREATE INDEX catalog_fingerprint_index_key_idx
    ON catalog_fingerprint_index (item_key) INCLUDE (recording, position);
CREATE INDEX catalog_fingerprint_index_recording_idx ON catalog_fingerprint_index (recording);
