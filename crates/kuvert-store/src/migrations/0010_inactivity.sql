-- Inactive accounts (seed 000): when an account was told that it will be deleted for want
-- of activity. Activity (last_activity_at, kept to the hour) clears it.
ALTER TABLE accounts ADD COLUMN inactivity_notice_at BIGINT
