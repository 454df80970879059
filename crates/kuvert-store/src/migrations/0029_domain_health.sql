-- What the last check of a domain found missing among its required records (JSON, NULL when
-- none), and when its owner was told of that set: a domain is re-checked daily, and a record
-- that breaks is shown on the API and told once. dns_override: the operator verified it
-- without a look-up, and the daily re-check leaves it alone until a verification looks.
ALTER TABLE domains ADD COLUMN problems TEXT;
ALTER TABLE domains ADD COLUMN problems_told_at BIGINT;
ALTER TABLE domains ADD COLUMN dns_override BIGINT NOT NULL DEFAULT 0
