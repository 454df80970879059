-- Delivery. A pending recipient (queued or deferred) has next_attempt_at set, every other has
-- it NULL. Taking a lease moves next_attempt_at to the lease's end and sets lease_owner to the
-- claim's token: a lease that outlives a crashed worker simply falls due again. One partial
-- index serves the picking query, however many deferred recipients wait.

DROP INDEX recipients_due;
CREATE INDEX recipients_next ON recipients (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX recipients_leased ON recipients (lease_owner) WHERE lease_owner IS NOT NULL;

-- Mail kept instead of sent ([delivery] mode = "capture"), as it would have left: signed.
CREATE TABLE captures (
    seq {serial},
    account_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    recipients {blob} NOT NULL,
    mime {blob} NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX captures_account ON captures (account_id, seq);

-- IP pools ([delivery.pools]): the pool of the domain, else that of the account, else none.
ALTER TABLE accounts ADD COLUMN pool TEXT;
ALTER TABLE domains ADD COLUMN pool TEXT
