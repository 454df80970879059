-- The particulars of an audit entry (a request's path, which can name a person), sealed
-- under the account's key. The action column keeps only what names no one (the method and
-- the route).
ALTER TABLE audit_log ADD COLUMN detail {blob}
