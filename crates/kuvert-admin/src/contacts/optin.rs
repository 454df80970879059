//! Double opt-in: a subscription asked for waits as `pending` while a confirmation mail goes
//! to the address, through Kuvert like any message of the account (signed by its domain,
//! queued, logged), untracked. The mail's words are the list's and Kuvert's only: nothing
//! the person asking typed goes into it but the address it is sent to, so the form cannot
//! carry anyone's message to a stranger.

use kuvert_core::id::AccountId;
use kuvert_core::optin::{Confirmation, token};
use kuvert_core::submission::{Submission, TrackingOptions};
use kuvert_core::{EmailAddress, Mailbox};
use kuvert_store::{List, OptInAsk, OptInRequest, Store};
use kuvert_submit::Acceptor;

use crate::AdminError;

/// Sends confirmation mails; made once by `serve`.
#[derive(Clone)]
pub struct OptIn {
    store: Store,
    acceptor: Acceptor,
    /// Where the links point: the public address of the HTTP server.
    base_url: String,
}

impl OptIn {
    pub fn new(store: Store, acceptor: Acceptor, base_url: &str) -> Self {
        Self {
            store,
            acceptor,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The public form of a list.
    pub fn form_url(&self, list: &kuvert_core::id::ListId) -> String {
        format!("{}/f/{list}", self.base_url)
    }

    /// The link a confirmation mail carries.
    pub fn confirm_url(&self, c: &Confirmation) -> String {
        format!(
            "{}/s/{}",
            self.base_url,
            token(self.store.tracking_key(), c)
        )
    }

    /// Asks `address` to confirm its subscription to `list`: the subscription is pending,
    /// and a confirmation mail is queued unless one went out within the hour, the address is
    /// subscribed already, or it may not be mailed. What it came to is returned; the public
    /// form answers the same whatever it is.
    pub async fn ask(
        &self,
        account: &AccountId,
        list: &List,
        address: &EmailAddress,
        name: Option<&str>,
        from_form: bool,
    ) -> Result<OptInRequest, AdminError> {
        let from = list
            .settings
            .confirm_from
            .as_deref()
            .ok_or(AdminError::NoConfirmationSender)?;
        let from = Mailbox::parse(from)?;
        let asked = self
            .store
            .request_opt_in(OptInAsk {
                account,
                list,
                address,
                name,
                from_form,
            })
            .await?;
        if let OptInRequest::Send(c) = &asked {
            let to = Mailbox {
                name: None,
                address: address.clone(),
            };
            let body = text(list, &self.confirm_url(c));
            let mut mail = Submission::plain(from, vec![to], &subject(list), &body);
            mail.tags = vec!["double-opt-in".to_owned()];
            mail.tracking = TrackingOptions {
                opens: Some(false),
                clicks: Some(false),
                unsubscribe: false,
            };
            if let Err(e) = self.acceptor.accept(account, mail).await {
                // Not sent, so not counted: the request may be made again at once.
                self.store.opt_in_mail_failed(c).await?;
                return Err(AdminError::ConfirmationMail(e));
            }
        }
        Ok(asked)
    }
}

fn subject(list: &List) -> String {
    format!("Please confirm your subscription to {}", list.settings.name)
}

fn text(list: &List, url: &str) -> String {
    format!(
        "Someone, we hope you, asked to receive the mail of the list \"{name}\" at this address.\n\n\
         To confirm, open this link and press the button:\n\n{url}\n\n\
         If it was not you, ignore this mail: without a confirmation you will not be \
         subscribed, and the link stops working in 7 days.\n",
        name = list.settings.name
    )
}
