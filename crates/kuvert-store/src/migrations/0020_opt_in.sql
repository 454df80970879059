-- Double opt-in and the public subscribe form. A list's form is off until the account turns
-- it on, and a list with a form confirms every subscriber by mail: the confirmation comes
-- from the list's own sender. The source address of a consent is kept only where the list
-- says so. A pending subscription remembers when its confirmation went out (no second one
-- within the hour, and it is dropped when its link expires), and a contact that only a form
-- made is dropped with it if it never confirmed.
ALTER TABLE lists ADD COLUMN public_form BIGINT NOT NULL DEFAULT 0;
ALTER TABLE lists ADD COLUMN confirm_from TEXT;
ALTER TABLE lists ADD COLUMN record_source BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN confirm_sent_at BIGINT;
CREATE INDEX subscriptions_pending ON subscriptions (confirm_sent_at) WHERE status = 'pending';
ALTER TABLE contacts ADD COLUMN unconfirmed BIGINT NOT NULL DEFAULT 0
