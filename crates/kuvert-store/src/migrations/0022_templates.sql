-- Templates with versions, one of them active. A version's body (its source, and the HTML
-- its MJML compiled to) is sealed under the account's data key like the rest of its content.
-- Names and tags are the account's identifiers, in clear.

CREATE TABLE templates (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX templates_name ON templates (account_id, name);

CREATE TABLE template_versions (
    template_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    engine TEXT NOT NULL,
    active BIGINT NOT NULL,
    comment TEXT,
    body {blob} NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (template_id, tag)
);
-- At most one active version a template, whatever two requests do at once.
CREATE UNIQUE INDEX template_versions_active ON template_versions (template_id) WHERE active = 1;
CREATE INDEX template_versions_account ON template_versions (account_id);
