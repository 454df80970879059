-- Webhooks: endpoints per account, and a durable outbox. Each event appended for an account
-- gets one outbox row per endpoint that wants it, in the same transaction. A row is done
-- when the endpoint took it (done_at with ok = 1) or it was given up (ok = 0).
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    signing_key {blob} NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id);

CREATE TABLE webhook_outbox (
    id {serial},
    webhook_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    done_at BIGINT,
    ok BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (webhook_id, id) WHERE done_at IS NULL;
CREATE INDEX webhook_outbox_webhook ON webhook_outbox (webhook_id, id)
