-- Why an account's sending paused (its bounce or complaint rate, as JSON with the figures):
-- set when it is suspended, cleared when the operator lifts it. The reputation check reads the
-- last day of each account's hourly counters, through this index.
ALTER TABLE accounts ADD COLUMN suspension TEXT;
CREATE INDEX stats_recent ON stats (hour, account_id) WHERE domain_id = '' AND tag = ''
