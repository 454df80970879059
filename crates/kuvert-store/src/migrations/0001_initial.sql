-- Timestamps are BIGINT milliseconds since the epoch (UTC). {blob} columns named in
-- SEALED_COLUMNS hold sealed values only. Personal values that must be searched are kept as
-- keyed hashes (*_lookup), never in clear.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    region TEXT NOT NULL,
    status TEXT NOT NULL,
    data_key {blob},
    company {blob},
    country {blob},
    vat_id {blob},
    postal_address {blob},
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    email_lookup TEXT NOT NULL UNIQUE,
    email {blob} NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    salutation {blob},
    first_name {blob},
    last_name {blob},
    phone {blob},
    created_at BIGINT NOT NULL,
    last_login_at BIGINT
);
CREATE INDEX users_account ON users (account_id);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE domains (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL UNIQUE,
    selector TEXT NOT NULL,
    dkim_private {blob} NOT NULL,
    dkim_public TEXT NOT NULL,
    sandbox BIGINT NOT NULL,
    verified_at BIGINT,
    checked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX domains_account ON domains (account_id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    domain_id TEXT NOT NULL,
    sender {blob} NOT NULL,
    subject {blob} NOT NULL,
    mime {blob},
    size BIGINT NOT NULL,
    tags TEXT NOT NULL,
    metadata {blob},
    require_tls BIGINT NOT NULL,
    track_opens BIGINT,
    track_clicks BIGINT,
    send_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_account ON messages (account_id, created_at);

CREATE TABLE recipients (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages (id),
    account_id TEXT NOT NULL,
    address {blob} NOT NULL,
    address_lookup TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX recipients_message ON recipients (message_id);
CREATE INDEX recipients_due ON recipients (status, next_attempt_at);

CREATE TABLE events (
    seq {serial},
    account_id TEXT NOT NULL,
    type TEXT NOT NULL,
    message_id TEXT,
    recipient_id TEXT,
    recipient {blob},
    recipient_lookup TEXT,
    tags TEXT NOT NULL,
    data {blob},
    created_at BIGINT NOT NULL
);
CREATE INDEX events_account ON events (account_id, seq);
CREATE INDEX events_message ON events (message_id);

CREATE TABLE suppressions (
    account_id TEXT NOT NULL,
    address_lookup TEXT NOT NULL,
    address {blob},
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, address_lookup)
);

CREATE TABLE usage (
    account_id TEXT NOT NULL,
    month_start BIGINT NOT NULL,
    recipients BIGINT NOT NULL,
    PRIMARY KEY (account_id, month_start)
)
