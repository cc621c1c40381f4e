-- A/B experiments (named traffic splits between variants), per-job assignments, and model
-- promotions accepted by the regression guard (`tunesmith models promote`).

CREATE TABLE experiments (
    name        text PRIMARY KEY,
    variants    jsonb NOT NULL,             -- [{name, weight, overrides: {model|template|profile}}]
    tenant      text,                       -- NULL: every tenant
    product     text,                       -- NULL: every product
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at  timestamptz
);

-- No foreign key to jobs: the SDK assigns (and records) before the workflow writes the job row.
CREATE TABLE experiment_assignments (
    job_id      text NOT NULL,
    experiment  text NOT NULL REFERENCES experiments (name),
    variant     text NOT NULL,
    overrides   jsonb NOT NULL DEFAULT '{}',  -- the request fields the variant set
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, experiment)
);
CREATE INDEX experiment_assignments_experiment_idx ON experiment_assignments (experiment, variant);

CREATE TABLE model_promotions (
    id                     bigserial PRIMARY KEY,
    tier                   text NOT NULL,
    model_id               text NOT NULL,
    model_version          text,
    previous_model_id      text NOT NULL,
    previous_model_version text,
    tolerances             jsonb NOT NULL,
    baseline               jsonb NOT NULL,   -- evaluation figures of the previous model
    candidate              jsonb NOT NULL,   -- evaluation figures of the promoted model
    comparison             jsonb NOT NULL,   -- metric by metric: values, delta, tolerance, ok
    created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_promotions_tier_idx ON model_promotions (tier, id DESC);
