-- Recipients sent per account and period (hour, day and month, in UTC): the commit checks each
-- quota against these in its transaction. The monthly counts move here from usage. A new
-- account's warm-up runs from warmup_from (NULL: none, as for accounts made before it).
CREATE TABLE quota_usage (
    account_id TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    recipients BIGINT NOT NULL,
    PRIMARY KEY (account_id, period, period_start)
);
INSERT INTO quota_usage (account_id, period, period_start, recipients)
    SELECT account_id, 'month', month_start, recipients FROM usage;
DROP TABLE usage;
ALTER TABLE accounts ADD COLUMN warmup_from BIGINT
