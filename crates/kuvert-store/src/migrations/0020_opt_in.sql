-- Double opt-in and the public subscribe form. A list's form is off until the account turns
-- it on, and a list with a form confirms every subscriber by mail: the confirmation comes
-- from the list's own sender. The source address of a consent is kept only where the list
-- says so. A subscription asked for remembers when its last confirmation went out and how
-- many went unanswered (no second one within the hour, no fourth at all, and a request is
-- dropped when its link expires), and a contact that only a form made is dropped with it
-- if it never confirmed. A list left keeps its status while a request to rejoin waits.
ALTER TABLE lists ADD COLUMN public_form BIGINT NOT NULL DEFAULT 0;
ALTER TABLE lists ADD COLUMN confirm_from TEXT;
ALTER TABLE lists ADD COLUMN record_source BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN confirm_sent_at BIGINT;
ALTER TABLE subscriptions ADD COLUMN confirm_count BIGINT NOT NULL DEFAULT 0;
CREATE INDEX subscriptions_asked ON subscriptions (confirm_sent_at) WHERE confirm_sent_at IS NOT NULL;
ALTER TABLE contacts ADD COLUMN unconfirmed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX contacts_unconfirmed ON contacts (created_at) WHERE unconfirmed = 1
