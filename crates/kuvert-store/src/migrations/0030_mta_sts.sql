-- MTA-STS policies of recipient domains as last fetched (policy: the policy as JSON), kept
-- until expires_at so that a policy survives a restart and a DNS answer an attacker removed.
CREATE TABLE mta_sts_policies (
    domain TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- TLS sessions counted per UTC day, policy domain, policy (by the id of its record, empty
-- when none could be read), MX host and result (empty: success), for the daily TLS report.
-- policy: the policy's lines as JSON.
CREATE TABLE tls_sessions (
    day BIGINT NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    mx_host TEXT NOT NULL,
    result TEXT NOT NULL,
    policy TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    PRIMARY KEY (day, policy_domain, policy_id, mx_host, result)
);
-- A day's report of a policy domain, claimed by the one node that sends it.
CREATE TABLE tls_reports (
    day BIGINT NOT NULL,
    policy_domain TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    sent_to TEXT,
    PRIMARY KEY (day, policy_domain)
)
