-- An endpoint's event types are the rows of webhook_events alone (none: every event), read
-- in the order of the types. The list kept beside them since migration 15, always written
-- in the same transaction, goes.
ALTER TABLE webhooks DROP COLUMN events
