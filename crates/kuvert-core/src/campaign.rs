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

string_enum! {
    /// What decides an A/B test: unique opens or unique clicks of each variant's copies.
    AbMetric { Opens = "opens", Clicks = "clicks" }
}

/// One variant of an A/B test: what it changes of the campaign (the rest is the campaign's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbVariant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Another template's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A version's tag of the variant's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An A/B test: two to four variants go to a sample of the audience (shared evenly); when
/// the sample is queued and `wait_minutes` have passed, the variant with more unique opens
/// or clicks goes to the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbTest {
    pub variants: Vec<AbVariant>,
    /// The sample's share of the audience, in percent (1 to 90).
    pub sample_percent: u8,
    pub metric: AbMetric,
    /// Minutes from the sample's last copy to the choice (at most 30 days).
    pub wait_minutes: u32,
}

impl AbTest {
    /// Why the test cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(2..=4).contains(&self.variants.len()) {
            return Err("an A/B test has 2 to 4 variants".into());
        }
        if !(1..=90).contains(&self.sample_percent) {
            return Err("sample_percent is 1 to 90".into());
        }
        if self.wait_minutes == 0 || self.wait_minutes > 30 * 24 * 60 {
            return Err("wait_minutes is 1 to 43200 (30 days)".into());
        }
        if self.variants.iter().any(|v| v == &AbVariant::default()) {
            return Err("each variant changes the subject or the template".into());
        }
        Ok(())
    }

    /// The variant a contact of the sample gets, or `None` for a contact of the rest.
    /// Drawn from a hash of the campaign and the contact, so that it is the same on every
    /// node and after every restart, and independent of the order of contacts.
    pub fn assign(&self, campaign: &str, contact: &str) -> Option<usize> {
        let h = fnv1a(campaign.bytes().chain([0]).chain(contact.bytes()));
        let share = h % 10_000;
        (share < u64::from(self.sample_percent) * 100)
            .then(|| ((h / 10_000) % self.variants.len() as u64) as usize)
    }

    /// The tag of a variant's sample copies: the campaign's id and the variant's letter.
    pub fn variant_tag(campaign: &str, variant: usize) -> String {
        format!("{campaign}.{}", char::from(b'a' + variant as u8))
    }
}

/// 64-bit FNV-1a, mixed at the end so that both the low and the high digits spread.
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// A variant's figures when the test was decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AbFigures {
    pub sent: u64,
    pub opened_unique: u64,
    pub clicked_unique: u64,
}

/// The choice of an A/B test and the figures it was made on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AbResult {
    /// The winner's index in `variants` (on a tie, the first).
    pub winner: usize,
    pub metric: AbMetric,
    /// Milliseconds since the Unix epoch.
    pub decided_at: i64,
    pub figures: Vec<AbFigures>,
}

impl AbResult {
    /// Picks the variant with the most of `metric`; the first on a tie.
    pub fn decide(metric: AbMetric, figures: Vec<AbFigures>, decided_at: i64) -> Self {
        let score = |f: &AbFigures| match metric {
            AbMetric::Opens => f.opened_unique,
            AbMetric::Clicks => f.clicked_unique,
        };
        let mut winner = 0;
        for (i, f) in figures.iter().enumerate() {
            if score(f) > score(&figures[winner]) {
                winner = i;
            }
        }
        Self {
            winner,
            metric,
            decided_at,
            figures,
        }
    }
}

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

    fn test(percent: u8, variants: usize) -> super::AbTest {
        super::AbTest {
            variants: (0..variants)
                .map(|i| super::AbVariant {
                    subject: Some(format!("subject {i}")),
                    ..Default::default()
                })
                .collect(),
            sample_percent: percent,
            metric: super::AbMetric::Opens,
            wait_minutes: 60,
        }
    }

    #[test]
    fn an_ab_sample_is_near_its_share_and_split_evenly() {
        let t = test(20, 3);
        let mut per = [0usize; 3];
        let mut rest = 0;
        for i in 0..30_000 {
            match t.assign("cmp_x", &format!("ct_{i:08}")) {
                Some(v) => per[v] += 1,
                None => rest += 1,
            }
        }
        let sample: usize = per.iter().sum();
        assert!((5_700..6_300).contains(&sample), "sample {sample} of 30000");
        assert_eq!(sample + rest, 30_000);
        for n in per {
            assert!((1_800..2_200).contains(&n), "{per:?}");
        }
        // The same contact, the same variant; another campaign draws anew.
        assert_eq!(t.assign("cmp_x", "ct_1"), t.assign("cmp_x", "ct_1"));
        let differs = (0..1000)
            .filter(|i| {
                let c = format!("ct_{i}");
                t.assign("cmp_x", &c) != t.assign("cmp_y", &c)
            })
            .count();
        assert!(differs > 100, "{differs}");
    }

    #[test]
    fn an_ab_test_is_checked_and_decided_by_its_metric() {
        assert!(test(20, 1).check().is_err());
        assert!(test(20, 5).check().is_err());
        assert!(test(0, 2).check().is_err());
        assert!(test(91, 2).check().is_err());
        assert!(test(50, 4).check().is_ok());
        let f = |o, c| super::AbFigures {
            sent: 10,
            opened_unique: o,
            clicked_unique: c,
        };
        let by_opens = super::AbResult::decide(super::AbMetric::Opens, vec![f(1, 9), f(5, 0)], 0);
        assert_eq!(by_opens.winner, 1);
        let by_clicks = super::AbResult::decide(super::AbMetric::Clicks, vec![f(1, 9), f(5, 0)], 0);
        assert_eq!(by_clicks.winner, 0);
        let tie = super::AbResult::decide(super::AbMetric::Opens, vec![f(2, 0), f(2, 0)], 0);
        assert_eq!(tie.winner, 0);
    }
}
