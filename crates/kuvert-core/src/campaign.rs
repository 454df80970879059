//! Campaigns: one template to the contacts of lists and segments, each contact once.

use serde::{Deserialize, Serialize};

use crate::account::string_enum;

string_enum! {
    /// Where a campaign is. `draft`: being written, changeable. `scheduled`: waits for its
    /// send time. `sending`: its contacts are being queued. `paused`: stopped by the account
    /// or by too many errors, resumable. `sent`: every contact queued. `cancelled`: stopped
    /// for good.
    CampaignState { Draft = "draft", Scheduled = "scheduled", Sending = "sending", Paused = "paused", Sent = "sent", Cancelled = "cancelled" }
}

impl CampaignState {
    /// The states an account's request may move a campaign to from this one.
    pub fn may_become(self, next: CampaignState) -> bool {
        use CampaignState::*;
        matches!(
            (self, next),
            (Draft, Scheduled)
                | (Scheduled, Draft)
                | (Scheduled | Sending, Paused)
                | (Paused, Sending)
                | (Draft | Scheduled | Sending | Paused, Cancelled)
        )
    }
}

/// Who a campaign goes to: the contacts subscribed to any of the lists or selected by any
/// of the segments, active, each once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default)]
    pub lists: Vec<String>,
    #[serde(default)]
    pub segments: Vec<String>,
}

/// At most this many lists and segments a campaign names.
pub const MAX_AUDIENCE_PARTS: usize = 20;

#[cfg(test)]
mod tests {
    use super::CampaignState::*;

    #[test]
    fn a_sent_or_cancelled_campaign_stays_so() {
        for s in [Sent, Cancelled] {
            for next in [Draft, Scheduled, Sending, Paused, Sent, Cancelled] {
                assert!(!s.may_become(next), "{s} -> {next}");
            }
        }
        assert!(Draft.may_become(Scheduled));
        assert!(Paused.may_become(Sending));
        assert!(!Draft.may_become(Sending), "a draft is scheduled first");
    }
}
