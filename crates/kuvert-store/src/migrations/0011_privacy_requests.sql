-- Privacy requests (seed 000 §8): every use of a data subject's right, with who asked
-- (sealed: it may name a person), its state and the date by which it must be answered.
CREATE TABLE privacy_requests (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    right_kind TEXT NOT NULL,
    requested_by {blob} NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX privacy_requests_account ON privacy_requests (account_id, created_at);
CREATE INDEX privacy_requests_open ON privacy_requests (state, due_at)
