-- Why an account's sending paused (its bounce or complaint rate, as JSON with the figures):
-- set when it is suspended, cleared when the operator lifts it. pause_told_at: when its owner
-- was told (NULL until a node claims the notice). judged_from: the hour a pause was lifted, so
-- that the outcomes that caused it do not pause it again. The reputation check reads the last
-- day of each account's hourly counters, through the index.
ALTER TABLE accounts ADD COLUMN suspension TEXT;
ALTER TABLE accounts ADD COLUMN pause_told_at BIGINT;
ALTER TABLE accounts ADD COLUMN judged_from BIGINT;
CREATE INDEX stats_recent ON stats (hour, account_id) WHERE domain_id = '' AND tag = ''
