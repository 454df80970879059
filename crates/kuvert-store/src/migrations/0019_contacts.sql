-- Contacts, lists and consent. A contact's address, name and properties are sealed, and its
-- address is found by a keyed hash under a key of its account (not the instance's lookup
-- key), so that the same person in two accounts cannot be linked by the hash. Segments
-- filter properties in SQL through contact_values: numbers, booleans and dates as numbers
-- in clear (they identify no one alone), text only as a keyed hash (equality only).

CREATE TABLE contact_properties (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    address_lookup TEXT NOT NULL,
    address {blob} NOT NULL,
    name {blob},
    properties {blob},
    status TEXT NOT NULL,
    last_sent_at BIGINT,
    last_opened_at BIGINT,
    last_clicked_at BIGINT,
    last_soft_bounce_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX contacts_address ON contacts (account_id, address_lookup);
CREATE INDEX contacts_account ON contacts (account_id, id);

CREATE TABLE contact_values (
    contact_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    num DOUBLE PRECISION,
    text_lookup TEXT,
    PRIMARY KEY (contact_id, name)
);
CREATE INDEX contact_values_num ON contact_values (account_id, name, num);
CREATE INDEX contact_values_text ON contact_values (account_id, name, text_lookup);

CREATE TABLE lists (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    double_opt_in BIGINT NOT NULL,
    consent_text TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX lists_name ON lists (account_id, name);

CREATE TABLE subscriptions (
    list_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (list_id, contact_id)
);
CREATE INDEX subscriptions_contact ON subscriptions (contact_id);

-- Consent given or withdrawn, per contact and list: how, the wording (or its version), and
-- the source address when the account records it (sealed).
CREATE TABLE consent_records (
    seq {serial},
    account_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    list_id TEXT NOT NULL,
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    consent_text TEXT,
    source {blob},
    created_at BIGINT NOT NULL
);
CREATE INDEX consent_records_contact ON consent_records (contact_id, seq);

-- An import: its upload in sealed chunks (gone when it ends), its counters, written in the
-- transaction of each batch of rows so that a restart resumes where it stopped, and the
-- sensitive-looking columns found (samples masked). A running import is leased by a node.
CREATE TABLE imports (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    list_id TEXT,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    consent_text TEXT,
    dropped TEXT NOT NULL,
    findings TEXT NOT NULL,
    total BIGINT NOT NULL,
    processed BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    error TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX imports_account ON imports (account_id, id);

CREATE TABLE import_chunks (
    import_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (import_id, seq)
);

-- Refused and skipped rows: the row's number, the column, why, never the value.
CREATE TABLE import_errors (
    import_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    column_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (import_id, row_number, column_name)
);

CREATE TABLE segments (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    filter TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX segments_name ON segments (account_id, name)
