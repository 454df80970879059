-- Advised records the last check of a domain found missing or wanting (JSON, NULL when
-- none): DMARC. Shown and told, it stops nothing.
ALTER TABLE domains ADD COLUMN advice TEXT
