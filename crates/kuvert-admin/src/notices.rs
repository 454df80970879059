//! Kuvert's own mail to account holders: notices of deletion and inactivity go through Kuvert
//! itself, from a system account that owns the notice sender's domain, down the one path every
//! message takes (accepted, queued, signed, delivered, logged).

use kuvert_core::Mailbox;
use kuvert_core::account::{Plan, Region};
use kuvert_core::domain::DomainSettings;
use kuvert_core::id::{AccountId, MessageId};
use kuvert_core::submission::Submission;
use kuvert_store::{Store, StoreError};
use kuvert_submit::Acceptor;

use crate::{AccountRequest, AdminError, add_domain, create_account};

/// Sends notices from `from`, as the system account.
#[derive(Clone)]
pub struct Notices {
    acceptor: Acceptor,
    account: AccountId,
    from: Mailbox,
}

impl Notices {
    /// Finds the system account by the sender's domain, or makes it (with that domain, which
    /// sends without DNS verification: the operator's own; publish its DKIM record).
    pub async fn open(
        store: &Store,
        acceptor: Acceptor,
        from: &str,
        settings: &DomainSettings,
    ) -> Result<Self, AdminError> {
        let from = Mailbox::parse(from).map_err(AdminError::InvalidEmail)?;
        let domain = from.address.domain().to_owned();
        let account = match store.domain(&domain).await {
            Ok(d) => d.account_id,
            Err(StoreError::NotFound(_)) => {
                let (account, _) = create_account(
                    store,
                    AccountRequest {
                        email: from.address.to_string(),
                        // Nobody logs in to the system account.
                        password: kuvert_core::password::random(),
                        plan: Plan::Premium,
                        region: Region::default(),
                        company: Default::default(),
                        owner: Default::default(),
                    },
                )
                .await?;
                add_domain(store, &account.id, &domain, settings, true).await?;
                // The platform's own notices are not a new sender's mail to warm up.
                store.set_warmup(&account.id, None).await?;
                account.id
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            acceptor,
            account,
            from,
        })
    }

    /// The system account's id (its mail is the platform's, not a customer's).
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The address notices come from.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Queues a message built whole (`raw`, whose From is [`Self::from`]), as SMTP would
    /// hand it over: a report whose MIME structure the builder does not make.
    pub async fn send_raw(
        &self,
        to: &str,
        subject: &str,
        raw: Vec<u8>,
        tags: &[&str],
    ) -> Result<MessageId, AdminError> {
        let to = Mailbox::parse(to).map_err(AdminError::InvalidEmail)?;
        let mut submission = Submission::plain(self.from.clone(), vec![to], subject, "");
        submission.body = kuvert_core::submission::Body::Raw(raw);
        self.accept(submission, tags).await
    }

    /// Queues a plain-text notice; answers when it is durably accepted.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        tags: &[&str],
    ) -> Result<MessageId, AdminError> {
        let to = Mailbox::parse(to).map_err(AdminError::InvalidEmail)?;
        self.accept(
            Submission::plain(self.from.clone(), vec![to], subject, text),
            tags,
        )
        .await
    }

    async fn accept(
        &self,
        mut submission: Submission,
        tags: &[&str],
    ) -> Result<MessageId, AdminError> {
        submission.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self.acceptor
            .accept(&self.account, submission)
            .await
            .map(|a| a.id)
            .map_err(|e| AdminError::Notice(e.to_string()))
    }
}
