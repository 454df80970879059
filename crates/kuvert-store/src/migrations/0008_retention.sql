-- Retention. Events are purged per account by age, so they are found by account and time.
-- A message's content (its MIME and tracking template) goes a few days after its last
-- delivery attempt: content_purged_at marks it, and a partial index finds what still has it.
-- Each purge run leaves a row of counts, never content.
CREATE INDEX events_account_time ON events (account_id, created_at);
ALTER TABLE messages ADD COLUMN content_purged_at BIGINT;
CREATE INDEX messages_with_content ON messages (created_at) WHERE content_purged_at IS NULL;
CREATE TABLE purge_runs (
    id {serial},
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    events BIGINT NOT NULL,
    webhook_deliveries BIGINT NOT NULL,
    message_contents BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    recipients BIGINT NOT NULL,
    captures BIGINT NOT NULL
)
