-- The similarity check's result is stored with the job (it was only in the workflow history,
-- which is gone after retention): one row per check, one row per catalog match. Written by the
-- `check_similarity` activity (activities/similarity/store.py) as upserts, so a retried attempt
-- leaves the same rows once. Jobs checked before this migration have no rows here.
CREATE TABLE similarity_checks (
    job_id              text PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
    fingerprint_sha256  text NOT NULL,          -- '' when the output could not be fingerprinted
    fingerprint_items   integer NOT NULL,
    risk                text NOT NULL,          -- clear | review | block
    risk_reasons        jsonb NOT NULL DEFAULT '[]',
    recommendation      jsonb NOT NULL,         -- the ReviewRecommendation (policy version, ...)
    checked_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE similarity_matches (
    job_id              text NOT NULL REFERENCES similarity_checks (job_id) ON DELETE CASCADE,
    -- A match's identity: the recording, how it was found and where, in both recordings.
    recording_id        text NOT NULL,
    method              text NOT NULL,          -- fingerprint | melody
    query_offset_s      double precision NOT NULL,
    recording_offset_s  double precision NOT NULL,
    position            integer NOT NULL,       -- its place in the check's ordered matches
    title               text,
    score               double precision NOT NULL,
    duration_s          double precision NOT NULL,
    risk                text NOT NULL,
    bit_error_rate      double precision,       -- fingerprint matches
    semitones           integer,                -- melody matches
    tempo_factor        double precision,       -- melody matches
    PRIMARY KEY (job_id, recording_id, method, query_offset_s, recording_offset_s)
);
CREATE INDEX similarity_matches_recording_idx ON similarity_matches (recording_id);

-- The overview image (waveform + spectrogram PNG) is an artifact row like the audio
-- (kind `overview_png`): the audio columns do not apply to it and stay NULL there.
ALTER TABLE artifacts ALTER COLUMN sample_rate DROP NOT NULL,
                      ALTER COLUMN channels DROP NOT NULL,
                      ALTER COLUMN duration_s DROP NOT NULL;
