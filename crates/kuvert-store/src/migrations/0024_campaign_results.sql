-- What a campaign's results need beyond the rollups: its A/B test (sealed, as its subjects
-- may be personal), when the test is decided and its choice with the figures, the clicks of
-- each link of its copies, and the way from a copy's message to its campaign (for clicks and
-- for an unsubscribe from the campaign's lists). A link is sealed (it may name its reader),
-- keyed by its keyed hash.
ALTER TABLE campaigns ADD COLUMN ab {blob};
ALTER TABLE campaigns ADD COLUMN ab_decide_at BIGINT;
ALTER TABLE campaigns ADD COLUMN ab_result TEXT;
CREATE INDEX campaign_sends_message ON campaign_sends (message_id);
-- A recipient's first unsubscribe, so that a second click counts no second time.
ALTER TABLE recipients ADD COLUMN unsubscribed_at BIGINT;
CREATE TABLE campaign_links (
    campaign_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    link TEXT NOT NULL,
    url {blob} NOT NULL,
    clicks BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, link)
)
