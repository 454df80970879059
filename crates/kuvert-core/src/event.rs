//! What happens to a message is an appended event; everything else reads events.

use crate::account::string_enum;

string_enum! {
    EventType {
        Accepted = "accepted",
        Delivered = "delivered",
        Deferred = "deferred",
        Bounced = "bounced",
        Failed = "failed",
        Dropped = "dropped",
        Opened = "opened",
        Clicked = "clicked",
        Unsubscribed = "unsubscribed",
        Complained = "complained",
    }
}

string_enum! {
    /// Where one recipient of a message stands.
    RecipientStatus {
        Queued = "queued",
        Deferred = "deferred",
        Delivered = "delivered",
        Bounced = "bounced",
        Failed = "failed",
        Dropped = "dropped",
        /// Waiting, without a next attempt, while its account is restricted.
        Held = "held",
    }
}

string_enum! {
    RecipientKind { To = "to", Cc = "cc", Bcc = "bcc" }
}

string_enum! {
    /// Why an address is on an account's suppression list.
    SuppressionReason { Bounce = "bounce", Unsubscribe = "unsubscribe", Complaint = "complaint", Manual = "manual" }
}
