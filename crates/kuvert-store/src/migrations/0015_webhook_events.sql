-- The event types each webhook endpoint wants, one row each, so that an event finds its
-- endpoints by a join (an endpoint with none wants every event). Filled from the list the
-- endpoints kept until now.
CREATE TABLE webhook_events (
    webhook_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_type)
);
CREATE INDEX webhook_events_account ON webhook_events (account_id);
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'accepted' FROM webhooks WHERE events LIKE '%"accepted"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'delivered' FROM webhooks WHERE events LIKE '%"delivered"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'deferred' FROM webhooks WHERE events LIKE '%"deferred"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'bounced' FROM webhooks WHERE events LIKE '%"bounced"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'failed' FROM webhooks WHERE events LIKE '%"failed"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'dropped' FROM webhooks WHERE events LIKE '%"dropped"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'opened' FROM webhooks WHERE events LIKE '%"opened"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'clicked' FROM webhooks WHERE events LIKE '%"clicked"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'unsubscribed' FROM webhooks WHERE events LIKE '%"unsubscribed"%';
INSERT INTO webhook_events (webhook_id, account_id, event_type) SELECT id, account_id, 'complained' FROM webhooks WHERE events LIKE '%"complained"%';
