//! MTA-STS policies of recipient domains, cached, and the TLS sessions counted for the daily
//! TLS report (RFC 8461, RFC 8460). Domains only: no one's address is here.

use kuvert_core::Timestamp;
use kuvert_core::mta_sts::{PolicySessions, ResultType, SessionCount, StsPolicy};

use crate::{Result, Store};

/// A policy as last fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The `id` of the TXT record it was fetched under.
    pub id: String,
    pub policy: StsPolicy,
    pub expires_at: Timestamp,
}

/// Sessions to add to one day's count of a policy domain, MX host and result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSessions {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub policy_domain: String,
    /// The id of the policy's record (empty: no policy could be read).
    pub policy_id: String,
    /// Empty for failures before any host (the policy could not be read).
    pub mx_host: String,
    /// `None`: the sessions succeeded.
    pub result: Option<ResultType>,
    /// The policy's lines (empty: none was read).
    pub policy: Vec<String>,
    pub count: u64,
}

impl Store {
    pub async fn sts_policy(&self, domain: &str) -> Result<Option<CachedPolicy>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT policy_id, policy, expires_at FROM mta_sts_policies WHERE domain = $1",
        )
        .bind(domain)
        .fetch_optional(self.pool())
        .await?;
        let Some((id, policy, expires_at)) = row else {
            return Ok(None);
        };
        // A row that does not read (written by a later version, say) is as none: fetch again.
        let Ok(policy) = serde_json::from_str(&policy) else {
            return Ok(None);
        };
        Ok(Some(CachedPolicy {
            id,
            policy,
            expires_at: Timestamp(expires_at),
        }))
    }

    /// Keeps a fetched policy (replacing the one before) and forgets those expired.
    pub async fn save_sts_policy(&self, domain: &str, cached: &CachedPolicy) -> Result<()> {
        let policy = serde_json::to_string(&cached.policy).expect("a policy serialises");
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO mta_sts_policies (domain, policy_id, policy, fetched_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (domain) DO UPDATE SET \
             policy_id = excluded.policy_id, policy = excluded.policy, \
             fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
        )
        .bind(domain)
        .bind(&cached.id)
        .bind(policy)
        .bind(self.now())
        .bind(cached.expires_at.millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM mta_sts_policies WHERE expires_at < $1")
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds counted sessions (the engine adds what it counted, now and then).
    pub async fn add_tls_sessions(&self, sessions: &[TlsSessions]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for s in sessions {
            sqlx::query(
                "INSERT INTO tls_sessions \
                 (day, policy_domain, policy_id, mx_host, result, policy, sessions) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (day, policy_domain, policy_id, mx_host, result) DO UPDATE SET \
                 sessions = tls_sessions.sessions + excluded.sessions, policy = excluded.policy",
            )
            .bind(s.day)
            .bind(&s.policy_domain)
            .bind(&s.policy_id)
            .bind(&s.mx_host)
            .bind(s.result.map_or("", ResultType::as_str))
            .bind(serde_json::to_string(&s.policy).expect("strings serialise"))
            .bind(i64::try_from(s.count).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `(day, policy domain)` of the days before `day` with sessions and no report yet.
    pub async fn tls_reports_due(&self, day: i64) -> Result<Vec<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT DISTINCT s.day, s.policy_domain FROM tls_sessions s WHERE s.day < $1 \
             AND NOT EXISTS (SELECT 1 FROM tls_reports r \
                 WHERE r.day = s.day AND r.policy_domain = s.policy_domain) \
             ORDER BY s.day, s.policy_domain",
        )
        .bind(day)
        .fetch_all(self.pool())
        .await?)
    }

    /// Claims a day's report of a domain (`true`: this node sends it).
    pub async fn claim_tls_report(&self, day: i64, domain: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO tls_reports (day, policy_domain, claimed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (day, policy_domain) DO NOTHING",
        )
        .bind(day)
        .bind(domain)
        .bind(self.now())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claim back (nothing could be sent: it is tried again).
    pub async fn release_tls_report(&self, day: i64, domain: &str) -> Result<()> {
        sqlx::query("DELETE FROM tls_reports WHERE day = $1 AND policy_domain = $2")
            .bind(day)
            .bind(domain)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// A day's counts of a domain, by policy (in the order of their ids).
    pub async fn tls_sessions(&self, day: i64, domain: &str) -> Result<Vec<PolicySessions>> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT policy_id, mx_host, result, policy, sessions FROM tls_sessions \
             WHERE day = $1 AND policy_domain = $2 ORDER BY policy_id, mx_host, result",
        )
        .bind(day)
        .bind(domain)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<(String, PolicySessions)> = Vec::new();
        for (id, mx_host, result, lines, sessions) in rows {
            // A result this version does not know (written by a later one) is left out
            // rather than counted as a success.
            let result = match result.as_str() {
                "" => None,
                r => match ResultType::parse(r) {
                    Some(r) => Some(r),
                    None => continue,
                },
            };
            if out.last().is_none_or(|(last, _)| *last != id) {
                let policy = serde_json::from_str(&lines).unwrap_or_default();
                out.push((
                    id.clone(),
                    PolicySessions {
                        policy,
                        sessions: vec![],
                    },
                ));
            }
            if let Some((_, p)) = out.last_mut() {
                p.sessions.push(SessionCount {
                    mx_host,
                    result,
                    count: u64::try_from(sessions).unwrap_or(0),
                });
            }
        }
        Ok(out.into_iter().map(|(_, p)| p).collect())
    }

    /// Forgets counts of days before `day` (reports not sent by then are given up).
    pub async fn forget_tls_sessions_before(&self, day: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM tls_sessions WHERE day < $1")
            .bind(day)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Records where a report went, and forgets the counts it was made of; claims older than
    /// `keep_claims_before` (a day number) go too.
    pub async fn tls_report_sent(
        &self,
        day: i64,
        domain: &str,
        sent_to: &str,
        keep_claims_before: i64,
    ) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("UPDATE tls_reports SET sent_to = $1 WHERE day = $2 AND policy_domain = $3")
            .bind(sent_to)
            .bind(day)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tls_sessions WHERE day = $1 AND policy_domain = $2")
            .bind(day)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tls_reports WHERE day < $1")
            .bind(keep_claims_before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
