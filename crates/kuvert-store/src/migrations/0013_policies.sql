-- Published versions of the privacy policy and the terms, with the day each takes effect.
-- They belong to the instance, not to an account.
CREATE TABLE policy_versions (
    id {serial},
    document TEXT NOT NULL,
    version TEXT NOT NULL,
    effective_at BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    url TEXT
)
