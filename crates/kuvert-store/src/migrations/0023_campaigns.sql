-- Campaigns. A campaign's copy for a contact is one row of campaign_sends, written in the
-- same transaction as the message (group commit): its primary key is what makes each
-- contact get a campaign once, whatever crashes and restarts. The hourly rate counts from
-- rate_since (the start, or the last resume), rate_done the contacts handled since. The sender, reply-to and
-- subject are sealed, the audience is ids of lists and segments.

CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    sender {blob} NOT NULL,
    reply_to {blob},
    subject {blob},
    template TEXT NOT NULL,
    version TEXT,
    audience TEXT NOT NULL,
    send_at BIGINT,
    per_hour BIGINT,
    max_errors BIGINT NOT NULL,
    cursor TEXT,
    sent BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    last_error TEXT,
    rate_since BIGINT,
    rate_done BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX campaigns_account ON campaigns (account_id, id);
CREATE INDEX campaigns_due ON campaigns (state, send_at);

CREATE TABLE campaign_sends (
    campaign_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE INDEX campaign_sends_account ON campaign_sends (account_id);
