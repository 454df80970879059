-- Endpoints registered through Mailgun's API get Mailgun's body (format 'mailgun') and only
-- the events of one domain's messages (domain_id, empty for every domain).
ALTER TABLE webhooks ADD COLUMN format TEXT NOT NULL DEFAULT 'kuvert';
ALTER TABLE webhooks ADD COLUMN domain_id TEXT NOT NULL DEFAULT ''
