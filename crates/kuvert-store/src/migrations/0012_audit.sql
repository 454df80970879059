-- Audit log: who (a user, an API key, the operator, support, the system) read or changed
-- what of an account, when, from which address (sealed: it is personal data). Kept for
-- the account's plan retention. Support may see an account's data only under a grant of
-- the account's, until it expires.
CREATE TABLE audit_log (
    seq {serial},
    account_id TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    ip {blob},
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);
CREATE INDEX audit_log_account_time ON audit_log (account_id, created_at);
CREATE TABLE support_grants (
    account_id TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX support_grants_account ON support_grants (account_id, expires_at);
ALTER TABLE purge_runs ADD COLUMN audit_entries BIGINT NOT NULL DEFAULT 0
