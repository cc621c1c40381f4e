-- Takedowns: one row per filed claim, an append-only audit log, and a flag on the job.
-- `jobs.stage` keeps its meaning (a taken-down job is still "published" in the pipeline's
-- sense); `jobs.takedown_state` says whether its files are out (quarantined/removed) or back.

ALTER TABLE jobs ADD COLUMN takedown_state text;   -- NULL: never taken down

CREATE TABLE takedowns (
    takedown_id      text PRIMARY KEY,             -- one per filing
    workflow_id      text NOT NULL,                -- takedown-<job_id>
    job_id           text NOT NULL REFERENCES jobs (job_id),
    claimant         text NOT NULL,
    contact_email    text NOT NULL,
    evidence         text NOT NULL,
    evidence_url     text,
    owner            text NOT NULL,                -- the job's tenant
    state            text NOT NULL,                -- filed|quarantined|disputed|restored|removed
    dispute_deadline timestamptz NOT NULL,
    objects          jsonb NOT NULL DEFAULT '[]',  -- keys moved out of the published bucket
    recording_id     text,                         -- catalog recording added on removal
    filed_at         timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX takedowns_job_idx ON takedowns (job_id, filed_at DESC);
CREATE INDEX takedowns_state_idx ON takedowns (state, filed_at DESC);

CREATE TABLE takedown_events (
    id          bigserial PRIMARY KEY,
    takedown_id text NOT NULL REFERENCES takedowns (takedown_id),
    job_id      text NOT NULL,
    event_key   text NOT NULL UNIQUE,              -- takedown id + workflow seq: written once
    actor       text NOT NULL,                     -- claimant, owner, reviewer or "system"
    action      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL,              -- workflow time of the event
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX takedown_events_takedown_idx ON takedown_events (takedown_id, id);
