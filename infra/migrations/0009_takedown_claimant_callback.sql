-- Takedown claimants get their own webhook: the claim's callback URL is kept on the takedown,
-- and each outbox row names its recipient. Existing rows (and every job event) stay the
-- owner's; a claimant row also names its takedown, so a later claimant of the same (restored)
-- asset never receives an earlier claimant's events.
ALTER TABLE takedowns ADD COLUMN claimant_callback_url text;

ALTER TABLE webhook_outbox
    ADD COLUMN recipient   text NOT NULL DEFAULT 'owner'
        CONSTRAINT webhook_outbox_recipient_check CHECK (recipient IN ('owner', 'claimant')),
    ADD COLUMN takedown_id text,
    ADD CONSTRAINT webhook_outbox_claimant_takedown_check
        CHECK (recipient = 'owner' OR takedown_id IS NOT NULL);
