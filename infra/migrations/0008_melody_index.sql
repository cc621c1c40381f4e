-- Candidate index for the melody detector (activities/catalog/melody_index.py): a few
-- key-invariant window vectors per recording, so a check scores only the recordings nearest
-- to its own windows instead of every stored melody profile.

-- NULL (recordings ingested before this index) or an older version: not in the index yet.
-- Checks still scan such recordings one by one; `tunesmith catalog reindex` indexes them.
ALTER TABLE catalog_recordings ADD COLUMN melody_index_version smallint;
CREATE INDEX catalog_recordings_melody_index_version_idx
    ON catalog_recordings (melody_index_version) WHERE melody IS NOT NULL;

CREATE TABLE catalog_melody_windows (
    recording       integer NOT NULL REFERENCES catalog_recordings (id) ON DELETE CASCADE,
    start_frame     integer NOT NULL,          -- window start in melody profile frames (93 ms)
    embedding       vector(144) NOT NULL       -- unit length: inner product = cosine
);
CREATE INDEX catalog_melody_windows_embedding_idx
    ON catalog_melody_windows USING hnsw (embedding vector_ip_ops);
CREATE INDEX catalog_melody_windows_recording_idx ON catalog_melody_windows (recording);
