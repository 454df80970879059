-- A tracked message's copies are written at delivery into the MIME built at acceptance, so
-- a message keeps that one content and three flags for what its copies carry. Until now
-- only a message with a template was tracked: one sent whole over SMTP kept the flags it
-- asked for, but no template, and was sent as it came. It keeps being sent so.
ALTER TABLE messages ADD COLUMN track_unsubscribe BIGINT NOT NULL DEFAULT 0;
UPDATE messages SET track_opens = 0, track_clicks = 0 WHERE template IS NULL AND (track_opens <> 0 OR track_clicks <> 0)
