//! Privacy requests (data subjects' rights): each use of a right is recorded with who asked,
//! its state and its due date, one month after it came in. Those answered by the API at once
//! are recorded as done; those that come by e-mail are recorded by the operator and stay open
//! until answered.

use kuvert_core::Timestamp;
use kuvert_core::account::{PRIVACY_REQUEST_DAYS, PrivacyRight, RequestState};
use kuvert_core::id::{AccountId, PrivacyRequestId};
use sqlx::FromRow;

use crate::accounts::parse_column;
use crate::seal::AccountKey;
use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivacyRequest {
    pub id: PrivacyRequestId,
    pub account_id: AccountId,
    pub right: PrivacyRight,
    /// `None` once the account's key is destroyed (an erasure).
    pub requested_by: Option<String>,
    pub state: RequestState,
    pub created_at: Timestamp,
    pub due_at: Timestamp,
    pub done_at: Option<Timestamp>,
}

impl PrivacyRequest {
    pub fn overdue(&self, now: Timestamp) -> bool {
        self.state == RequestState::Open && self.due_at.millis() < now.millis()
    }
}

const COLUMNS: &str =
    "id, account_id, right_kind, requested_by, state, created_at, due_at, done_at";

/// A request as stored (`COLUMNS`), who asked sealed.
#[derive(FromRow)]
struct PrivacyRequestRow {
    id: String,
    account_id: String,
    right_kind: String,
    requested_by: Vec<u8>,
    state: String,
    created_at: i64,
    due_at: i64,
    done_at: Option<i64>,
}

impl PrivacyRequestRow {
    /// The request, who asked opened with `key`; `None`: the account's key is destroyed.
    fn open(self, key: Option<&AccountKey>) -> Result<PrivacyRequest> {
        let requested_by = match key {
            Some(key) => Some(key.open_string(&self.requested_by)?),
            None => None,
        };
        Ok(PrivacyRequest {
            id: PrivacyRequestId::from_string(self.id),
            account_id: AccountId::from_string(self.account_id),
            right: parse_column(&self.right_kind)?,
            requested_by,
            state: parse_column(&self.state)?,
            created_at: Timestamp(self.created_at),
            due_at: Timestamp(self.due_at),
            done_at: self.done_at.map(Timestamp),
        })
    }
}

impl Store {
    /// Records a request; `done` when it was answered on the spot.
    pub async fn record_privacy_request(
        &self,
        account: &AccountId,
        right: PrivacyRight,
        requested_by: &str,
        done: bool,
    ) -> Result<PrivacyRequestId> {
        let key = self.account_key(account).await?;
        let now = self.now();
        let id = PrivacyRequestId::generate(Timestamp(now));
        sqlx::query(&format!(
            "INSERT INTO privacy_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(right.as_str())
        .bind(key.seal(requested_by.as_bytes()))
        .bind(
            if done {
                RequestState::Done
            } else {
                RequestState::Open
            }
            .as_str(),
        )
        .bind(now)
        .bind(now + PRIVACY_REQUEST_DAYS * 86_400_000)
        .bind(done.then_some(now))
        .execute(self.writer())
        .await?;
        Ok(id)
    }

    /// Closes an open request as done or refused.
    pub async fn close_privacy_request(
        &self,
        id: &PrivacyRequestId,
        state: RequestState,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE privacy_requests SET state = $1, done_at = $2 WHERE id = $3 AND state = $4",
        )
        .bind(state.as_str())
        .bind(self.now())
        .bind(id.as_str())
        .bind(RequestState::Open.as_str())
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("open privacy request"));
        }
        Ok(())
    }

    /// Requests of one account, or of all (the operator's list): open ones first, the most
    /// overdue at the top, then the answered ones, newest first.
    pub async fn privacy_requests(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<PrivacyRequest>> {
        let rows = sqlx::query_as::<_, PrivacyRequestRow>(&format!(
            "SELECT {COLUMNS} FROM privacy_requests WHERE ($1 = '' OR account_id = $1) \
             ORDER BY CASE WHEN state = 'open' THEN 0 ELSE 1 END, \
             CASE WHEN state = 'open' THEN due_at ELSE -created_at END, id"
        ))
        .bind(account.map_or("", AccountId::as_str))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let key = match self
                .account_key(&AccountId::from_string(r.account_id.clone()))
                .await
            {
                Ok(key) => Some(key),
                Err(StoreError::KeyDestroyed) => None,
                Err(e) => return Err(e),
            };
            out.push(r.open(key.as_deref())?);
        }
        Ok(out)
    }
}
