//! Sending paused on reputation. An account whose hard bounces or complaints over the last
//! day pass its plan's limits is suspended (its mail waits, its submissions are refused, a
//! `suspended` event says why), its owner is told with the figures, and only the operator
//! lifts the pause (`kuvert account unsuspend`, audited).

use std::collections::HashMap;
use std::time::Duration;

use kuvert_core::account::{ActorKind, Plan, PlanLimits};
use kuvert_core::id::AccountId;
use kuvert_core::reputation::{Pause, percent};
use kuvert_store::Store;

use crate::AdminError;
use crate::notices::Notices;

/// How often `serve` judges the accounts (in real time).
const LOOK_EVERY: Duration = Duration::from_secs(60);

pub struct ReputationGuard {
    pub store: Store,
    pub notices: Notices,
    pub plans: HashMap<Plan, PlanLimits>,
}

impl ReputationGuard {
    /// Judges every active account that had a hard bounce or a complaint in the window;
    /// returns those it paused now. The system account, whose notices go to owners whatever
    /// their addresses are worth, is never paused. Then tells every owner not yet told (a
    /// notice that failed, or whose node stopped, is sent by a later check). One account's
    /// failure is logged and the others are still judged.
    pub async fn check(&self) -> Result<Vec<(AccountId, Pause)>, AdminError> {
        let mut paused = Vec::new();
        for (account, plan, outcomes) in self.store.recent_outcomes().await? {
            if &account == self.notices.account() {
                continue;
            }
            let limits = self
                .plans
                .get(&plan)
                .copied()
                .unwrap_or_else(|| plan.default_limits());
            let Some(pause) = outcomes.judge(&limits.reputation) else {
                continue;
            };
            // Another node may have paused it a moment ago: then this one changes nothing.
            match self.store.suspend(&account, &pause).await {
                Ok(true) => {
                    tracing::warn!(account = %account, reason = %pause, "sending paused");
                    paused.push((account, pause));
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(account = %account, error = %e, "cannot pause"),
            }
        }
        for (account, pause) in self.store.untold_pauses().await? {
            if !self.store.claim_pause_notice(&account).await? {
                continue;
            }
            if let Err(e) = self.tell_owner(&account, &pause).await {
                tracing::warn!(account = %account, error = %e, "the pause notice was not sent");
                self.store.release_pause_notice(&account).await?;
            }
        }
        Ok(paused)
    }

    async fn tell_owner(&self, account: &AccountId, pause: &Pause) -> Result<(), AdminError> {
        let (owner, _) = self.store.owner(account).await?;
        let text = format!(
            "Sending from your Kuvert account has been paused.\n\n\
             Over the last {hours} hours, {what}.\n\n\
             Mail that was waiting stays queued and new messages are refused until the pause is \
             lifted. High bounce and complaint rates make mailbox providers refuse mail from \
             this platform's addresses, for you and for every other sender here; above 0.3 % \
             complaints, Gmail and Yahoo block a sender.\n\n\
             What to do: remove addresses that bounce or never asked for your mail (the \
             bounced and complained addresses are on your suppression list already), check how \
             your lists were collected, then ask the operator of this Kuvert instance to lift \
             the pause.\n\n\
             The figures: {count} of {of} ({rate}); the limit is {limit}.\n",
            hours = pause.window_hours,
            what = pause,
            count = pause.count,
            of = pause.of,
            rate = percent(pause.rate_bp),
            limit = percent(pause.limit_bp),
        );
        self.notices
            .send(
                &owner,
                "Sending from your Kuvert account is paused",
                &text,
                &["kuvert-pause"],
            )
            .await?;
        Ok(())
    }

    /// The background job of `serve`.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        let me = std::sync::Arc::new(self);
        crate::every(LOOK_EVERY, "reputation check", move || {
            let me = me.clone();
            async move { me.check().await.map(drop) }
        })
    }
}

/// The operator (`who`) lifts a pause (audited in the account's log, with what caused it);
/// held mail is due at once. Answers whether the account was paused.
pub async fn unsuspend(store: &Store, account: &AccountId, who: &str) -> Result<bool, AdminError> {
    let pause = store.suspension(account).await?;
    if !store.unsuspend(account).await? {
        return Ok(false);
    }
    store
        .audit(
            account,
            ActorKind::Operator,
            who,
            "lifted the pause of sending",
            pause.map(|p| p.to_string()).as_deref(),
            None,
        )
        .await?;
    Ok(true)
}
