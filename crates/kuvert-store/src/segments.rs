//! Segments: saved filters (`kuvert_core::segment::Filter`) over contacts, turned into one
//! SQL condition here. Each condition is an index look-up: a property through
//! `contact_values`, a list through `subscriptions`, engagement and status by the contact's
//! own columns; the filter's size is bounded by its check.

use kuvert_core::Timestamp;
use kuvert_core::id::{AccountId, SegmentId};
use kuvert_core::segment::{Compare, Engagement, Filter, Op};
use sqlx::FromRow;

use crate::contacts::{CONTACT_COLUMNS, Contact, ContactRow};
use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub id: SegmentId,
    pub name: String,
    pub filter: Filter,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(FromRow)]
struct SegmentRow {
    id: String,
    name: String,
    filter: String,
    created_at: i64,
    updated_at: i64,
}

impl SegmentRow {
    fn parse(self) -> Result<Segment> {
        Ok(Segment {
            id: SegmentId::from_string(self.id),
            name: self.name,
            filter: serde_json::from_str(&self.filter)
                .map_err(|e| StoreError::Sealing(format!("segment filter: {e}")))?,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

/// A bound value of the compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Num(f64),
    Int(i64),
}

/// Builds the condition on `c` (a contact row), numbering placeholders from `next`.
struct Sql<'a> {
    text: String,
    binds: Vec<Bind>,
    next: usize,
    account: &'a str,
    key: &'a crate::seal::AccountKey,
    kinds: &'a std::collections::HashMap<String, kuvert_core::contact::PropertyKind>,
    now: i64,
}

impl Sql<'_> {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        let p = format!("${}", self.next);
        self.next += 1;
        p
    }

    fn filter(&mut self, f: &Filter) -> Result<()> {
        match f {
            Filter::All(v) | Filter::Any(v) => {
                let joiner = if matches!(f, Filter::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.text.push('(');
                for (i, sub) in v.iter().enumerate() {
                    if i > 0 {
                        self.text.push_str(joiner);
                    }
                    self.filter(sub)?;
                }
                self.text.push(')');
            }
            Filter::Not(sub) => {
                self.text.push_str("NOT (");
                self.filter(sub)?;
                self.text.push(')');
            }
            Filter::Status(s) => {
                let p = self.bind(Bind::Text(s.as_str().to_owned()));
                self.text.push_str(&format!("c.status = {p}"));
            }
            Filter::List(l) => {
                let list = self.bind(Bind::Text(l.list.clone()));
                let status = self.bind(Bind::Text(
                    l.status
                        .unwrap_or(kuvert_core::contact::SubscriptionStatus::Subscribed)
                        .as_str()
                        .to_owned(),
                ));
                self.text.push_str(&format!(
                    "c.id IN (SELECT s.contact_id FROM subscriptions s WHERE s.list_id = {list} AND s.status = {status})"
                ));
            }
            Filter::Engagement(e) => {
                let column = match e.kind {
                    Engagement::Sent => "c.last_sent_at",
                    Engagement::Opened => "c.last_opened_at",
                    Engagement::Clicked => "c.last_clicked_at",
                    Engagement::BouncedSoft => "c.last_soft_bounce_at",
                };
                match e.days {
                    _ if e.never => self.text.push_str(&format!("{column} IS NULL")),
                    Some(days) => {
                        let since = self.bind(Bind::Int(self.now - i64::from(days) * 86_400_000));
                        self.text.push_str(&format!("{column} >= {since}"));
                    }
                    None => self.text.push_str("1 = 0"),
                }
            }
            Filter::Property(p) => {
                let compare = p.compare(self.kinds)?;
                let acc = self.bind(Bind::Text(self.account.to_owned()));
                let name = self.bind(Bind::Text(p.name.clone()));
                // Each kind has its own partial index: say which, so that `exists` and
                // `missing` read it too.
                let column = match self.kinds.get(&p.name) {
                    Some(kuvert_core::contact::PropertyKind::String) => "v.text_lookup",
                    _ => "v.num",
                };
                let values = format!(
                    "SELECT v.contact_id FROM contact_values v WHERE v.account_id = {acc} AND v.name = {name} AND {column} IS NOT NULL"
                );
                let cond = match compare {
                    Compare::Exists => format!("c.id IN ({values})"),
                    Compare::Missing => format!("c.id NOT IN ({values})"),
                    Compare::Text { eq, value } => {
                        let h = self.bind(Bind::Text(self.key.lookup(&value)));
                        if eq {
                            format!("c.id IN ({values} AND v.text_lookup = {h})")
                        } else {
                            format!("c.id NOT IN ({values} AND v.text_lookup = {h})")
                        }
                    }
                    Compare::Number { op, value } => {
                        let v = self.bind(Bind::Num(value));
                        let sql_op = match op {
                            Op::Eq | Op::Ne => "=",
                            Op::Lt => "<",
                            Op::Lte => "<=",
                            Op::Gt => ">",
                            Op::Gte => ">=",
                            Op::Exists | Op::Missing => "=",
                        };
                        let inner = format!("{values} AND v.num {sql_op} {v}");
                        if op == Op::Ne {
                            format!("c.id NOT IN ({inner})")
                        } else {
                            format!("c.id IN ({inner})")
                        }
                    }
                };
                self.text.push_str(&cond);
            }
        }
        Ok(())
    }
}

impl Store {
    /// The condition of `filter` and its binds, placeholders from `$2` (`$1` is the account).
    async fn compile(&self, account: &AccountId, filter: &Filter) -> Result<(String, Vec<Bind>)> {
        let (text, binds, _) = self.compile_at(account, filter, 2).await?;
        Ok((text, binds))
    }

    /// The filter's condition with its placeholders numbered from `next`, and the number
    /// after its last.
    async fn compile_at(
        &self,
        account: &AccountId,
        filter: &Filter,
        next: usize,
    ) -> Result<(String, Vec<Bind>, usize)> {
        let key = self.account_key(account).await?;
        let kinds = self.contact_properties(account).await?;
        filter.check(&kinds)?;
        let mut sql = Sql {
            text: String::new(),
            binds: Vec::new(),
            next,
            account: account.as_str(),
            key: &key,
            kinds: &kinds,
            now: self.now(),
        };
        sql.filter(filter)?;
        Ok((sql.text, sql.binds, sql.next))
    }

    /// Active contacts any of `filters` selects (each checked on its own), after `after`
    /// in id order: a campaign's audience, a page at a time, each contact once.
    pub async fn audience_page(
        &self,
        account: &AccountId,
        filters: &[Filter],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let mut next = 2;
        let mut parts = Vec::with_capacity(filters.len());
        let mut binds = Vec::new();
        for f in filters {
            let (cond, b, n) = self.compile_at(account, f, next).await?;
            parts.push(cond);
            binds.extend(b);
            next = n;
        }
        let columns = CONTACT_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM contacts c WHERE c.account_id = $1 AND c.status = '{}' AND c.id > ${next} AND ({}) ORDER BY c.id LIMIT {limit}",
            kuvert_core::contact::ContactStatus::Active.as_str(),
            parts.join(" OR ")
        );
        let mut q = sqlx::query_as::<_, ContactRow>(&sql).bind(account.as_str());
        for b in binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Num(n) => q.bind(n),
                Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q.bind(after.unwrap_or("")).fetch_all(self.pool()).await?;
        let key = self.account_key(account).await?;
        self.open_contacts(account, &key, rows).await
    }

    /// The conditions of these segments (a deleted one is left out), each with its binds,
    /// placeholders from `$2`.
    pub(crate) async fn segment_conditions(
        &self,
        account: &AccountId,
        ids: &[String],
    ) -> Result<Vec<Condition>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.segment(account, id).await {
                Ok(s) => out.push(self.compile_at(account, &s.filter, 2).await?),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// How many contacts the filter selects.
    pub async fn segment_count(&self, account: &AccountId, filter: &Filter) -> Result<u64> {
        let (cond, binds) = self.compile(account, filter).await?;
        let sql = format!("SELECT COUNT(*) FROM contacts c WHERE c.account_id = $1 AND {cond}");
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(account.as_str());
        for b in binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Num(n) => q.bind(n),
                Bind::Int(i) => q.bind(i),
            };
        }
        Ok(q.fetch_one(self.pool()).await?.max(0) as u64)
    }

    /// The first `limit` contacts the filter selects, in id order.
    pub async fn segment_preview(
        &self,
        account: &AccountId,
        filter: &Filter,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let (cond, binds) = self.compile(account, filter).await?;
        let columns = CONTACT_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM contacts c WHERE c.account_id = $1 AND {cond} ORDER BY c.id LIMIT {}",
            limit
        );
        let mut q = sqlx::query_as::<_, ContactRow>(&sql).bind(account.as_str());
        for b in binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Num(n) => q.bind(n),
                Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(self.pool()).await?;
        let key = self.account_key(account).await?;
        self.open_contacts(account, &key, rows).await
    }

    pub async fn create_segment(
        &self,
        account: &AccountId,
        name: &str,
        filter: &Filter,
    ) -> Result<Segment> {
        // Refuses a filter that does not compile for this account.
        self.compile(account, filter).await?;
        let now = self.now();
        let id = SegmentId::generate(Timestamp(now));
        sqlx::query(
            "INSERT INTO segments (id, account_id, name, filter, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(name)
        .bind(serde_json::to_string(filter).expect("filters serialise"))
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(StoreError::conflict("segment"))?;
        Ok(Segment {
            id,
            name: name.to_owned(),
            filter: filter.clone(),
            created_at: Timestamp(now),
            updated_at: Timestamp(now),
        })
    }

    pub async fn segments(&self, account: &AccountId) -> Result<Vec<Segment>> {
        sqlx::query_as::<_, SegmentRow>(
            "SELECT id, name, filter, created_at, updated_at FROM segments WHERE account_id = $1 ORDER BY name",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(SegmentRow::parse)
        .collect()
    }

    pub async fn segment(&self, account: &AccountId, id: &str) -> Result<Segment> {
        sqlx::query_as::<_, SegmentRow>(
            "SELECT id, name, filter, created_at, updated_at FROM segments WHERE account_id = $1 AND id = $2",
        )
        .bind(account.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("segment"))?
        .parse()
    }

    pub async fn delete_segment(&self, account: &AccountId, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM segments WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("segment"));
        }
        Ok(())
    }
}

/// A compiled filter: its SQL, its binds, and the number of the placeholder after them.
pub(crate) type Condition = (String, Vec<Bind>, usize);

/// Whether any of `conditions` (from `segment_conditions`) selects the active contact with
/// this keyed address, as the transaction sees it.
pub(crate) async fn any_selects(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account: &str,
    conditions: &[Condition],
    lookup: &str,
) -> Result<bool> {
    for (cond, binds, next) in conditions {
        let sql = format!(
            "SELECT COUNT(*) FROM contacts c WHERE c.account_id = $1 AND c.status = 'active' AND c.address_lookup = ${next} AND {cond}"
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(account);
        for b in binds {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Num(n) => q.bind(*n),
                Bind::Int(i) => q.bind(*i),
            };
        }
        if q.bind(lookup).fetch_one(&mut **tx).await? > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}
