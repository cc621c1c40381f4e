-- Delivery bookkeeping for the webhook outbox: attempts and the last error, for operators.
ALTER TABLE webhook_outbox
    ADD COLUMN attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error text;
CREATE INDEX webhook_outbox_pending_idx ON webhook_outbox (job_id) WHERE delivered_at IS NULL;
