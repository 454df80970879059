-- Contacts for speed: segments count from indexes alone, and an import writes fewer B-trees.
-- The contact index holds the contact's status and engagement times (the columns a segment
-- reads of the contact itself, none of them sealed), so a count never reads the contact
-- rows, whose sealed columns are most of their size. Property values and subscriptions
-- are kept in the order of their keys (SQLite: without a rowid, so each row is one B-tree
-- entry, not two). A value is indexed as a number or as a keyed text, never both, so each
-- index holds only its own kind. List members with a status come from an index of their own.
DROP INDEX contacts_account;
CREATE INDEX contacts_account ON contacts (account_id, id, status, last_sent_at, last_opened_at, last_clicked_at, last_soft_bounce_at);
CREATE TABLE contact_values_keyed (
    contact_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    num DOUBLE PRECISION,
    text_lookup TEXT,
    PRIMARY KEY (contact_id, name)
) {without_rowid};
INSERT INTO contact_values_keyed (contact_id, account_id, name, num, text_lookup)
    SELECT contact_id, account_id, name, num, text_lookup FROM contact_values;
DROP TABLE contact_values;
ALTER TABLE contact_values_keyed RENAME TO contact_values;
CREATE INDEX contact_values_num ON contact_values (account_id, name, num, contact_id) WHERE num IS NOT NULL;
CREATE INDEX contact_values_text ON contact_values (account_id, name, text_lookup, contact_id) WHERE text_lookup IS NOT NULL;
CREATE TABLE subscriptions_keyed (
    list_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    confirm_sent_at BIGINT,
    confirm_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (list_id, contact_id)
) {without_rowid};
INSERT INTO subscriptions_keyed (list_id, contact_id, account_id, status, updated_at, confirm_sent_at, confirm_count)
    SELECT list_id, contact_id, account_id, status, updated_at, confirm_sent_at, confirm_count FROM subscriptions;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_keyed RENAME TO subscriptions;
CREATE INDEX subscriptions_contact ON subscriptions (contact_id);
CREATE INDEX subscriptions_list ON subscriptions (list_id, status, contact_id);
CREATE INDEX subscriptions_asked ON subscriptions (confirm_sent_at) WHERE confirm_sent_at IS NOT NULL
