-- SMTP-IP credentials: a key bound to source networks (comma-separated CIDR). A client that
-- connects from one of them submits for the key's account without AUTH.
ALTER TABLE api_keys ADD COLUMN smtp_networks TEXT
