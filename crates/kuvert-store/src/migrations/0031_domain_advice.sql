-- Advised records the last check of a domain found missing or wanting (JSON, NULL when
-- none): DMARC and the tracking host. Shown and told, they stop nothing.
ALTER TABLE domains ADD COLUMN advice TEXT
