-- Review queue: who may review (roles, tenants), an audit log of every review decision (accepted
-- or refused) and escalation, and reviewers' annotations (tags, rating, post-edit).

CREATE TABLE reviewers (
    name        text PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('reviewer', 'senior', 'admin')),
    tenants     text[],                     -- NULL: every tenant
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE review_audit (
    id          bigserial PRIMARY KEY,
    job_id      text NOT NULL,              -- no FK: refusals for unknown jobs are audited too
    reviewer    text,
    action      text NOT NULL,              -- update | signal | client | escalate | outcome
    decision    text,                       -- approve | reject | the outcome | the target
    accepted    boolean NOT NULL,
    reason      text,
    event_key   text UNIQUE,                -- retried activities write their row once
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_audit_job_idx ON review_audit (job_id, at);

CREATE TABLE review_annotations (
    id          bigserial PRIMARY KEY,
    job_id      text NOT NULL REFERENCES jobs (job_id),
    reviewer    text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    rating      smallint CHECK (rating BETWEEN 1 AND 5),
    note        text,
    post_edit   boolean NOT NULL DEFAULT false,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_annotations_job_idx ON review_annotations (job_id);
