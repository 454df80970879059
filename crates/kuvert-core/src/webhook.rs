//! Webhooks: what became of an event sent to an endpoint.

use crate::account::string_enum;

string_enum! {
    /// Where the delivery of one event to one endpoint stands.
    DeliveryState {
        /// Not taken yet: it is tried again with backoff.
        Pending = "pending",
        /// The endpoint answered 2xx.
        Delivered = "delivered",
        /// Given up: the endpoint did not take it in the time allowed.
        Failed = "failed",
    }
}

string_enum! {
    /// The body an endpoint gets: Kuvert's own event, Mailgun's (an endpoint registered
    /// through Mailgun's API, for receivers written for Mailgun), or Mailjet's (registered
    /// through Mailjet's `eventcallbackurl`: version 1 posts an event as an object, version 2
    /// in an array).
    WebhookFormat { Kuvert = "kuvert", Mailgun = "mailgun", MailjetV1 = "mailjet_v1", MailjetV2 = "mailjet_v2" }
}
