-- The templates go. Whether each waiting one wanted an unsubscribe link is read from it
-- first (in Rust, since it is sealed: schema.rs, unsubscribe_flags), in this migration's
-- transaction.
ALTER TABLE messages DROP COLUMN template
