use kuvert_core::Timestamp;
use kuvert_core::account::{AccountStatus, CompanyProfile, Plan, Region, Role, UserProfile};
use kuvert_core::id::{AccountId, UserId};
use kuvert_core::quota::{QuotaPeriod, Usage};
use kuvert_core::tracking::AccountTracking;
use sqlx::FromRow;

use crate::domains::{DomainRow, JOINED_COLUMNS};
use crate::seal::AccountKey;
use crate::{Domain, Result, Store, StoreError};

pub struct NewUser {
    pub email: String,
    /// An Argon2id PHC string; the store never sees the password.
    pub password_hash: String,
    pub role: Role,
    pub profile: UserProfile,
}

pub struct NewAccount {
    pub plan: Plan,
    pub region: Region,
    pub profile: CompanyProfile,
    pub owner: NewUser,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub plan: Plan,
    pub region: Region,
    pub status: AccountStatus,
    pub profile: CompanyProfile,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    pub email: String,
    pub role: Role,
    pub profile: UserProfile,
    pub created_at: Timestamp,
}

/// Reads the text of a column into one of core's enums; text it does not know is a decode
/// error, as a column of the wrong type would be.
pub(crate) fn parse_column<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|e: String| StoreError::Database(sqlx::Error::Decode(e.into())))
}

/// An account as stored (`account` reads it by its id), its profile sealed.
#[derive(FromRow)]
struct AccountRow {
    plan: String,
    region: String,
    status: String,
    company: Option<Vec<u8>>,
    country: Option<Vec<u8>>,
    vat_id: Option<Vec<u8>>,
    postal_address: Option<Vec<u8>>,
    created_at: i64,
}

impl AccountRow {
    fn open(self, id: AccountId, key: &AccountKey) -> Result<Account> {
        Ok(Account {
            id,
            plan: parse_column(&self.plan)?,
            region: parse_column(&self.region)?,
            status: parse_column(&self.status)?,
            profile: CompanyProfile {
                company: key.open_opt(self.company)?,
                country: key.open_opt(self.country)?,
                vat_id: key.open_opt(self.vat_id)?,
                postal_address: key.open_opt(self.postal_address)?,
            },
            created_at: Timestamp(self.created_at),
        })
    }
}

/// A user as stored, its e-mail and profile sealed.
#[derive(FromRow)]
struct UserRow {
    id: String,
    email: Vec<u8>,
    role: String,
    salutation: Option<Vec<u8>>,
    first_name: Option<Vec<u8>>,
    last_name: Option<Vec<u8>>,
    phone: Option<Vec<u8>>,
    created_at: i64,
}

impl UserRow {
    fn open(self, account_id: AccountId, key: &AccountKey) -> Result<User> {
        Ok(User {
            id: UserId::from_string(self.id),
            account_id,
            email: key.open_string(&self.email)?,
            role: parse_column(&self.role)?,
            profile: UserProfile {
                salutation: key.open_opt(self.salutation)?,
                first_name: key.open_opt(self.first_name)?,
                last_name: key.open_opt(self.last_name)?,
                phone: key.open_opt(self.phone)?,
            },
            created_at: Timestamp(self.created_at),
        })
    }
}

/// What logging in needs of a user.
#[derive(FromRow)]
struct PasswordRow {
    id: String,
    account_id: String,
    password_hash: String,
}

/// An account's plan, status and tracking settings (JSON).
#[derive(FromRow)]
struct StateRow {
    plan: String,
    status: String,
    tracking: Option<String>,
}

impl StateRow {
    fn parse(self) -> Result<AccountState> {
        let tracking = match self.tracking {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.into())))?,
            None => AccountTracking::default(),
        };
        Ok(AccountState {
            plan: parse_column(&self.plan)?,
            status: parse_column(&self.status)?,
            tracking,
        })
    }
}

/// `sending_context`'s row: the account's state, the id of the domain when the account owns
/// it (the domain's other columns are read by [`DomainRow`] then), and the month's usage.
#[derive(FromRow)]
struct SendingRow {
    #[sqlx(flatten)]
    state: StateRow,
    id: Option<String>,
    used_month: Option<i64>,
    used_day: Option<i64>,
    used_hour: Option<i64>,
    warmup_from: Option<i64>,
}

impl Store {
    /// Gives an account an IP pool, used by its domains that have none of their own.
    pub async fn set_account_pool(&self, account: &AccountId, pool: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE accounts SET pool = $1 WHERE id = $2")
            .bind(pool)
            .bind(account.as_str())
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("account"));
        }
        Ok(())
    }

    /// Creates an account with its owner. Fails with `Conflict("user")` when the e-mail is taken.
    pub async fn create_account(&self, new: NewAccount) -> Result<(Account, User)> {
        let now = self.now();
        let account_id = AccountId::generate(Timestamp(now));
        let user_id = UserId::generate(Timestamp(now));
        let (key, wrapped) = self.0.master.new_account_key(account_id.as_str());
        let p = &new.profile;
        let u = &new.owner;
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, plan, region, status, data_key, company, country, vat_id, postal_address, created_at, updated_at, last_activity_at, warmup_from) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10, $10)",
        )
        .bind(account_id.as_str())
        .bind(new.plan.as_str())
        .bind(new.region.as_str())
        .bind(AccountStatus::Active.as_str())
        .bind(wrapped)
        .bind(key.seal_opt(p.company.as_deref()))
        .bind(key.seal_opt(p.country.as_deref()))
        .bind(key.seal_opt(p.vat_id.as_deref()))
        .bind(key.seal_opt(p.postal_address.as_deref()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO users (id, account_id, email_lookup, email, password_hash, role, salutation, first_name, last_name, phone, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(user_id.as_str())
        .bind(account_id.as_str())
        .bind(self.lookup_hash(&u.email))
        .bind(key.seal(u.email.as_bytes()))
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(key.seal_opt(u.profile.salutation.as_deref()))
        .bind(key.seal_opt(u.profile.first_name.as_deref()))
        .bind(key.seal_opt(u.profile.last_name.as_deref()))
        .bind(key.seal_opt(u.profile.phone.as_deref()))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict("a user with this e-mail"))?;
        tx.commit().await?;
        let account = Account {
            id: account_id.clone(),
            plan: new.plan,
            region: new.region,
            status: AccountStatus::Active,
            profile: new.profile,
            created_at: Timestamp(now),
        };
        let user = User {
            id: user_id,
            account_id,
            email: new.owner.email,
            role: new.owner.role,
            profile: new.owner.profile,
            created_at: Timestamp(now),
        };
        Ok((account, user))
    }

    pub async fn account(&self, id: &AccountId) -> Result<Account> {
        let row = sqlx::query_as::<_, AccountRow>(
            "SELECT id, plan, region, status, company, country, vat_id, postal_address, created_at FROM accounts WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("account"))?;
        let key = self.account_key(id).await?;
        row.open(id.clone(), &key)
    }

    /// Finds an account by its id or by the e-mail of one of its users (what the CLI accepts).
    pub async fn find_account(&self, id_or_email: &str) -> Result<Account> {
        if AccountId::looks_like(id_or_email) {
            return self
                .account(&AccountId::from_string(id_or_email.to_owned()))
                .await;
        }
        let id: Option<String> =
            sqlx::query_scalar("SELECT account_id FROM users WHERE email_lookup = $1")
                .bind(self.lookup_hash(id_or_email))
                .fetch_optional(self.pool())
                .await?;
        self.account(&AccountId::from_string(
            id.ok_or(StoreError::NotFound("account"))?,
        ))
        .await
    }

    pub async fn users(&self, account: &AccountId) -> Result<Vec<User>> {
        let key = self.account_key(account).await?;
        let rows = sqlx::query_as::<_, UserRow>(
            "SELECT id, email, role, salutation, first_name, last_name, phone, created_at FROM users WHERE account_id = $1 ORDER BY created_at",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| row.open(account.clone(), &key))
            .collect()
    }

    /// The password hash of a user, found by e-mail, for logging in.
    pub async fn password_hash(&self, email: &str) -> Result<Option<(UserId, AccountId, String)>> {
        let row = sqlx::query_as::<_, PasswordRow>(
            "SELECT id, account_id, password_hash FROM users WHERE email_lookup = $1",
        )
        .bind(self.lookup_hash(email))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| {
            (
                UserId::from_string(r.id),
                AccountId::from_string(r.account_id),
                r.password_hash,
            )
        }))
    }
}

impl Store {
    /// Plan, status and tracking settings: what every submission checks, without unsealing
    /// the profile.
    pub async fn account_state(&self, id: &AccountId) -> Result<AccountState> {
        sqlx::query_as::<_, StateRow>("SELECT plan, status, tracking FROM accounts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("account"))?
            .parse()
    }

    /// Starts the account's warm-up again (`Some`, when a pause is lifted) or ends it
    /// (`None`: the operator's choice, or the development account).
    pub async fn set_warmup(&self, id: &AccountId, from: Option<Timestamp>) -> Result<()> {
        sqlx::query("UPDATE accounts SET warmup_from = $1 WHERE id = $2")
            .bind(from.map(Timestamp::millis))
            .bind(id.as_str())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// What accepting a message needs to know of its account, in one statement (it runs
    /// for every message): its state, the sending domain `domain` if this account owns it,
    /// the recipients it has sent in the month, day and hour of `at`, and its warm-up.
    pub async fn sending_context(
        &self,
        id: &AccountId,
        domain: &str,
        at: Timestamp,
    ) -> Result<SendingContext> {
        let row = sqlx::query(&format!(
            "SELECT a.plan, a.status, a.tracking, a.warmup_from, {JOINED_COLUMNS}, \
             (SELECT u.recipients FROM quota_usage u WHERE u.account_id = a.id AND u.period = 'month' AND u.period_start = $3) AS used_month, \
             (SELECT u.recipients FROM quota_usage u WHERE u.account_id = a.id AND u.period = 'day' AND u.period_start = $4) AS used_day, \
             (SELECT u.recipients FROM quota_usage u WHERE u.account_id = a.id AND u.period = 'hour' AND u.period_start = $5) AS used_hour \
             FROM accounts a LEFT JOIN domains d ON d.name = $2 AND d.account_id = a.id WHERE a.id = $1"
        ))
        .bind(id.as_str())
        .bind(domain.to_ascii_lowercase())
        .bind(QuotaPeriod::Month.start(at).millis())
        .bind(QuotaPeriod::Day.start(at).millis())
        .bind(QuotaPeriod::Hour.start(at).millis())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("account"))?;
        let sending = SendingRow::from_row(&row)?;
        let domain = match sending.id {
            Some(_) => Some(DomainRow::from_row(&row)?.into()),
            None => None,
        };
        let used = |n: Option<i64>| n.unwrap_or(0).max(0) as u64;
        let used = Usage {
            month: used(sending.used_month),
            day: used(sending.used_day),
            hour: used(sending.used_hour),
        };
        Ok(SendingContext {
            state: sending.state.parse()?,
            domain,
            used,
            warmup_from: sending.warmup_from.map(Timestamp),
        })
    }

    pub async fn set_account_tracking(&self, id: &AccountId, t: &AccountTracking) -> Result<()> {
        let done = sqlx::query("UPDATE accounts SET tracking = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(t).expect("settings serialise"))
            .bind(self.now())
            .bind(id.as_str())
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("account"));
        }
        Ok(())
    }
}

/// What an account's submissions and tracking links depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountState {
    pub plan: Plan,
    pub status: AccountStatus,
    pub tracking: AccountTracking,
}

impl Store {
    /// Rectification (the holder's right): replaces the account's company fields.
    pub async fn update_account_profile(&self, id: &AccountId, p: &CompanyProfile) -> Result<()> {
        let key = self.account_key(id).await?;
        sqlx::query(
            "UPDATE accounts SET company = $1, country = $2, vat_id = $3, postal_address = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(key.seal_opt(p.company.as_deref()))
        .bind(key.seal_opt(p.country.as_deref()))
        .bind(key.seal_opt(p.vat_id.as_deref()))
        .bind(key.seal_opt(p.postal_address.as_deref()))
        .bind(self.now())
        .bind(id.as_str())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Rectification of a user of the account: e-mail and personal fields. `Conflict("user")`
    /// when the new e-mail belongs to another user.
    pub async fn update_user(
        &self,
        account: &AccountId,
        user: &UserId,
        email: &str,
        p: &UserProfile,
    ) -> Result<()> {
        let key = self.account_key(account).await?;
        let done = sqlx::query(
            "UPDATE users SET email_lookup = $1, email = $2, salutation = $3, first_name = $4, last_name = $5, phone = $6 \
             WHERE id = $7 AND account_id = $8",
        )
        .bind(self.lookup_hash(email))
        .bind(key.seal(email.as_bytes()))
        .bind(key.seal_opt(p.salutation.as_deref()))
        .bind(key.seal_opt(p.first_name.as_deref()))
        .bind(key.seal_opt(p.last_name.as_deref()))
        .bind(key.seal_opt(p.phone.as_deref()))
        .bind(user.as_str())
        .bind(account.as_str())
        .execute(self.writer())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict("user"),
            _ => e.into(),
        })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(())
    }
}

/// See [`Store::sending_context`].
#[derive(Clone, Debug)]
pub struct SendingContext {
    pub state: AccountState,
    /// `None`: the account has no such domain.
    pub domain: Option<Domain>,
    /// Recipients sent in each period holding the moment asked about.
    pub used: Usage,
    /// When the account's warm-up started; `None`: it has none.
    pub warmup_from: Option<Timestamp>,
}
