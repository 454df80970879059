-- A tracked message's copies are written at delivery into the MIME built at acceptance, so
-- the message keeps that one content and what its copies carry: the template goes. Until
-- now only a message with a template was tracked (one sent whole over SMTP kept its asked-for
-- flags but no template), and which of opens, clicks and an unsubscribe link it wanted only
-- its sealed template told. One without opens and clicks had a template for the link alone.
-- One with them may have asked for the link too, and is given it: a link too many lets a
-- recipient leave, a link too few would keep one who asked for it.
ALTER TABLE messages ADD COLUMN track_unsubscribe BIGINT NOT NULL DEFAULT 0;
UPDATE messages SET track_opens = 0, track_clicks = 0 WHERE template IS NULL;
UPDATE messages SET track_unsubscribe = 1 WHERE template IS NOT NULL;
ALTER TABLE messages DROP COLUMN template
