-- Tracking. A tracked message keeps its content as a template (sealed JSON) from which each
-- recipient's copy, with its own links, is built at delivery. The first open and click of a
-- recipient make the unique counts.
ALTER TABLE messages ADD COLUMN template {blob};
ALTER TABLE recipients ADD COLUMN opened_at BIGINT;
ALTER TABLE recipients ADD COLUMN clicked_at BIGINT
