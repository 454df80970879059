-- Statistics: counters per account, domain, tag, hour and metric, raised in the same
-- transaction as the events they count. An empty domain_id or tag is the total over all.
-- They hold no personal data and outlive the purge of raw events.
CREATE TABLE stats (
    account_id TEXT NOT NULL,
    domain_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    hour BIGINT NOT NULL,
    metric TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (account_id, domain_id, tag, hour, metric)
)
