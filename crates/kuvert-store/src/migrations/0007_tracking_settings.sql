-- Tracking settings. The account's are JSON (kuvert_core::tracking::AccountTracking), null
-- for the defaults. A domain's opens and clicks are 1, 0 or null (the account decides).
ALTER TABLE accounts ADD COLUMN tracking TEXT;
ALTER TABLE domains ADD COLUMN track_opens BIGINT;
ALTER TABLE domains ADD COLUMN track_clicks BIGINT
