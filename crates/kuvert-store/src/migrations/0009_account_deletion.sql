-- Account deletion (seed 003 §7). A closed account has no data key (its sealed values are
-- unreadable from then on) and every row of it is deleted at purge_due_at.
ALTER TABLE accounts ADD COLUMN closed_at BIGINT;
ALTER TABLE accounts ADD COLUMN purge_due_at BIGINT;
ALTER TABLE purge_runs ADD COLUMN accounts BIGINT NOT NULL DEFAULT 0
