-- A sending domain's DKIM keys: several at once while a new key replaces an old one, or an
-- Ed25519 key signs beside the RSA one. A key signs only once DNS holds its record, and a
-- replaced key stays listed until retire_at. Each domain's one key moves here as its active
-- RSA key.
CREATE TABLE dkim_keys (
    domain_id TEXT NOT NULL,
    selector TEXT NOT NULL,
    account_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    private {blob} NOT NULL,
    public TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active_at BIGINT,
    retire_at BIGINT,
    PRIMARY KEY (domain_id, selector)
);
INSERT INTO dkim_keys (domain_id, selector, account_id, algorithm, private, public, state, created_at, active_at)
    SELECT id, selector, account_id, 'rsa', dkim_private, dkim_public, 'active', created_at, created_at FROM domains;
ALTER TABLE domains DROP COLUMN dkim_private;
ALTER TABLE domains DROP COLUMN dkim_public;
ALTER TABLE domains DROP COLUMN selector
