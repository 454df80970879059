//! One typed configuration: defaults, then the TOML file, then `KUVERT_*` environment
//! variables. Every key of the file can be set from the environment: `[http] listen` is
//! `KUVERT_HTTP_LISTEN`, `[plans.free] monthly_quota` is `KUVERT_PLANS_FREE_MONTHLY_QUOTA`.
//! Unknown keys and bad values stop the start with a message naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kuvert_core::account::{Plan, PlanLimits};
use kuvert_core::domain::DomainSettings;
use kuvert_core::duration::HumanDuration;
use kuvert_core::reputation::{PROVIDER_COMPLAINT_BP, Rate, ReputationLimits};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: Http,
    pub database: Database,
    pub dns: DnsConfig,
    pub limits: Limits,
    pub domains: DomainSettingsConfig,
    pub plans: BTreeMap<String, PlanConfig>,
    pub security: Security,
    pub delivery: kuvert_mta::DeliveryConfig,
    pub smtp: kuvert_smtpd::SmtpConfig,
    pub webhooks: kuvert_webhooks::WebhookConfig,
    pub tracking: Tracking,
    pub retention: Retention,
    pub notices: Notices,
    pub contacts: Contacts,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// How long a message's content is kept after its last delivery attempt; its metadata
    /// stays as long as its events. (Event retention is per plan: `[plans.*]`.)
    pub message_content: HumanDuration,
    /// How often the purge runs.
    pub purge_interval: HumanDuration,
    /// Rows per delete statement: small enough that sending keeps its latency.
    pub batch: u32,
    /// Milliseconds of rest between two delete statements, so that sending gets the
    /// database in between.
    pub batch_pause_ms: u64,
    /// How long a deleted account's rows remain (unreadable: its key is destroyed at once)
    /// before the purge removes them. At most 90 days: the promise is that a deleted
    /// account's data is gone within 90 days.
    pub deleted_accounts: HumanDuration,
    /// Months without activity (sending, logging in) before an account is told that it
    /// will be deleted (12 by default).
    pub inactive_months: u32,
    /// Time after that notice before an account still inactive is deleted (30d by default).
    pub inactive_grace: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Notices {
    /// Sender of Kuvert's own mail to account holders (deletion, inactivity). Empty:
    /// `Kuvert <notices@[domains] hostname>`. Its domain belongs to a system account made on
    /// first start; publish that domain's DKIM record (`kuvert domain list --account ...`).
    pub from: String,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            message_content: HumanDuration::secs(7 * 86_400),
            purge_interval: HumanDuration::secs(86_400),
            batch: 1_000,
            batch_pause_ms: 10,
            deleted_accounts: HumanDuration::secs(90 * 86_400),
            inactive_months: 12,
            inactive_grace: HumanDuration::secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Contacts {
    /// Largest CSV file an import takes, in bytes (it is kept sealed in the database while
    /// the import runs).
    pub max_import_bytes: u64,
    /// Domains address validation calls disposable, beside those Kuvert knows.
    pub disposable_domains: Vec<String>,
    /// Posts to the public subscribe forms and their confirmation links a client network
    /// may make per minute.
    pub form_requests_per_minute: u32,
}

impl Default for Contacts {
    fn default() -> Self {
        Self {
            max_import_bytes: 512 << 20,
            disposable_domains: Vec::new(),
            form_requests_per_minute: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Tracking {
    /// Public URL of the open, click and unsubscribe links (the HTTP listener as the world
    /// reaches it, or a domain's tracking CNAME). Empty: http://[http] listen.
    pub base_url: String,
    /// Requests to the tracking links one client network may make a minute (each is a
    /// write); more get 429.
    pub requests_per_minute: u32,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            requests_per_minute: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: String,
    /// Connections at once; more are closed as they come.
    pub max_connections: u32,
    /// A request's header must arrive whole within this (slow clients are cut off).
    pub header_read_timeout: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// Empty: SQLite in the data directory. Or `postgres://user@host/db`.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// `host:port` of the DNS servers to ask; empty: the system's resolvers.
    pub nameservers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_message_bytes: u64,
    pub max_recipients: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DomainSettingsConfig {
    pub hostname: String,
    pub dkim_selector: String,
    pub return_path_prefix: String,
    pub tracking_prefix: String,
    /// How long a replaced DKIM key's record stays listed (and must stay published).
    pub dkim_retire_after: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub event_retention_months: u32,
    pub monthly_quota: u64,
    pub daily_limit: u64,
    pub hourly_limit: u64,
    /// A new account's daily limit on its first day; 0: no warm-up.
    pub warmup_first_day: u64,
    pub max_domains: u32,
    /// Sending pauses when hard bounces pass this share of the recipients sent to in the
    /// last 24 hours.
    pub max_hard_bounce_rate: Rate,
    /// ... or complaints this share of the recipients delivered to (below 0.3 %).
    pub max_complaint_rate: Rate,
    /// Fewer recipients than this in the 24 hours are not judged.
    pub min_judged_recipients: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// File holding the instance master key (64 hex digits). Empty: `master.key` in the data
    /// directory, created on first start. `KUVERT_MASTER_KEY` takes precedence over both.
    pub master_key_file: String,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_connections: 1024,
            header_read_timeout: HumanDuration::secs(10),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let l = kuvert_core::submission::Limits::default();
        Self {
            max_message_bytes: l.max_message_bytes as u64,
            max_recipients: l.max_recipients as u64,
        }
    }
}

impl Default for DomainSettingsConfig {
    fn default() -> Self {
        let d = DomainSettings::default();
        Self {
            hostname: d.hostname,
            dkim_selector: d.dkim_selector,
            return_path_prefix: d.return_path_prefix,
            tracking_prefix: d.tracking_prefix,
            dkim_retire_after: HumanDuration(std::time::Duration::from_millis(
                d.dkim_retire_after_ms as u64,
            )),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let plans = Plan::ALL
            .iter()
            .map(|p| {
                let l = p.default_limits();
                (
                    p.to_string(),
                    PlanConfig {
                        event_retention_months: l.event_retention_months,
                        monthly_quota: l.monthly_quota,
                        daily_limit: l.daily_limit,
                        hourly_limit: l.hourly_limit,
                        warmup_first_day: l.warmup_first_day,
                        max_domains: l.max_domains,
                        max_hard_bounce_rate: Rate(l.reputation.max_hard_bounce_bp),
                        max_complaint_rate: Rate(l.reputation.max_complaint_bp),
                        min_judged_recipients: l.reputation.min_recipients,
                    },
                )
            })
            .collect();
        Self {
            http: Http::default(),
            database: Database::default(),
            dns: DnsConfig::default(),
            limits: Limits::default(),
            domains: DomainSettingsConfig::default(),
            plans,
            security: Security::default(),
            delivery: kuvert_mta::DeliveryConfig::default(),
            smtp: kuvert_smtpd::SmtpConfig::default(),
            webhooks: kuvert_webhooks::WebhookConfig::default(),
            tracking: Tracking::default(),
            retention: Retention::default(),
            notices: Notices::default(),
            contacts: Contacts::default(),
        }
    }
}

/// Environment variables that are not configuration keys.
const NOT_KEYS: &[&str] = &[
    "KUVERT_MASTER_KEY",
    "KUVERT_DATA_DIR",
    "KUVERT_CONFIG",
    "KUVERT_LOG",
    "KUVERT_LOG_FORMAT",
];

impl Config {
    /// Defaults (those of `serve --dev` when `dev`), then `file` if given, then the
    /// environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        dev: bool,
    ) -> Result<Self> {
        let mut defaults = Config::default();
        if dev {
            // Nothing leaves a dev instance unless its config says so: mail is captured.
            defaults.delivery.mode = kuvert_mta::Mode::Capture;
        }
        let mut tree = toml::Value::try_from(defaults).context("defaults serialise")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            let file_tree: toml::Value = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            merge(&mut tree, file_tree);
        }
        let leaves = leaf_paths(&tree);
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("KUVERT_") else {
                continue;
            };
            if NOT_KEYS.contains(&name.as_str()) || rest.starts_with("TEST_") {
                continue;
            }
            let Some((path, default)) = leaves
                .iter()
                .find(|(p, _)| p.join("_").eq_ignore_ascii_case(rest))
            else {
                bail!("{name} is not a configuration key (see kuvert.example.toml)");
            };
            let parsed = env_value(default, &value).with_context(|| format!("{name}={value:?}"))?;
            set(&mut tree, path, parsed);
        }
        let config: Config = tree
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("configuration: {}", e.message()))?;
        config.check()?;
        Ok(config)
    }

    /// The sender of Kuvert's own notices.
    pub fn notices_from(&self) -> String {
        if self.notices.from.is_empty() {
            format!("Kuvert <notices@{}>", self.domains.hostname)
        } else {
            self.notices.from.clone()
        }
    }

    fn check(&self) -> Result<()> {
        if self.retention.deleted_accounts.0 > kuvert_admin::deletion::MAX_PURGE_AFTER {
            bail!(
                "[retention] deleted_accounts is at most 90d: a deleted account's data is gone \
                 within 90 days"
            );
        }
        kuvert_core::Mailbox::parse(&self.notices_from()).with_context(|| {
            format!("[notices] from = {:?} is not an address", self.notices.from)
        })?;
        self.http
            .listen
            .parse::<SocketAddr>()
            .with_context(|| format!("[http] listen = {:?} is not host:port", self.http.listen))?;
        self.nameservers()?;
        if !self.database.url.is_empty()
            && !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            bail!("[database] url must be empty (SQLite in the data directory) or postgres://...");
        }
        if self.limits.max_recipients == 0 || self.limits.max_message_bytes < 1024 {
            bail!("[limits] max_recipients must be at least 1 and max_message_bytes at least 1024");
        }
        if !kuvert_core::address::is_host_name(&self.domains.hostname) {
            bail!(
                "[domains] hostname = {:?} is not a host name",
                self.domains.hostname
            );
        }
        if let Some(problem) = self
            .delivery
            .problems()
            .into_iter()
            .chain(self.smtp.problems())
            .next()
        {
            bail!("{problem}");
        }
        if self.domains.dkim_retire_after.0 < std::time::Duration::from_secs(86_400) {
            bail!(
                "[domains] dkim_retire_after must be at least 1d: mail signed with a replaced key may still be on its way"
            );
        }
        for (name, p) in &self.plans {
            name.parse::<Plan>()
                .map_err(|e| anyhow::anyhow!("[plans.{name}]: {e}"))?;
            if p.max_complaint_rate.0 >= PROVIDER_COMPLAINT_BP {
                bail!(
                    "[plans.{name}] max_complaint_rate = {:?} must stay below 0.3%, where mailbox providers block a sender",
                    p.max_complaint_rate.to_string()
                );
            }
        }
        Ok(())
    }

    pub fn nameservers(&self) -> Result<Vec<SocketAddr>> {
        self.dns
            .nameservers
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| {
                        s.parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .with_context(|| {
                        format!("[dns] nameservers: {s:?} is not an IP address or address:port")
                    })
            })
            .collect()
    }

    pub fn retention_policy(&self) -> kuvert_store::RetentionPolicy {
        kuvert_store::RetentionPolicy {
            event_months: self
                .plan_limits()
                .into_iter()
                .map(|(plan, l)| (plan, l.event_retention_months))
                .collect(),
            content_ms: self.retention.message_content.millis(),
            batch: self.retention.batch.max(1),
            pause: std::time::Duration::from_millis(self.retention.batch_pause_ms),
        }
    }

    pub fn inactivity_policy(&self) -> kuvert_admin::inactivity::InactivityPolicy {
        kuvert_admin::inactivity::InactivityPolicy {
            notice_after_months: self.retention.inactive_months,
            delete_after: self.retention.inactive_grace.0,
            purge_after: self.retention.deleted_accounts.0,
        }
    }

    pub fn plan_limits(&self) -> std::collections::HashMap<Plan, PlanLimits> {
        self.plans
            .iter()
            .filter_map(|(name, p)| {
                Some((
                    name.parse().ok()?,
                    PlanLimits {
                        event_retention_months: p.event_retention_months,
                        monthly_quota: p.monthly_quota,
                        daily_limit: p.daily_limit,
                        hourly_limit: p.hourly_limit,
                        warmup_first_day: p.warmup_first_day,
                        max_domains: p.max_domains,
                        reputation: ReputationLimits {
                            max_hard_bounce_bp: p.max_hard_bounce_rate.0,
                            max_complaint_bp: p.max_complaint_rate.0,
                            min_recipients: p.min_judged_recipients,
                        },
                    },
                ))
            })
            .collect()
    }

    pub fn domain_settings(&self) -> DomainSettings {
        let d = &self.domains;
        DomainSettings {
            hostname: d.hostname.clone(),
            dkim_selector: d.dkim_selector.clone(),
            return_path_prefix: d.return_path_prefix.clone(),
            tracking_prefix: d.tracking_prefix.clone(),
            dkim_retire_after_ms: d.dkim_retire_after.millis(),
        }
    }

    pub fn submission_limits(&self) -> kuvert_core::submission::Limits {
        kuvert_core::submission::Limits {
            max_recipients: self.limits.max_recipients as usize,
            max_message_bytes: self.limits.max_message_bytes as usize,
        }
    }

    pub fn master_key_file(&self, data_dir: &Path) -> PathBuf {
        if self.security.master_key_file.is_empty() {
            data_dir.join("master.key")
        } else {
            PathBuf::from(&self.security.master_key_file)
        }
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn leaf_paths(tree: &toml::Value) -> Vec<(Vec<String>, toml::Value)> {
    let mut out = Vec::new();
    fn walk(v: &toml::Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, toml::Value)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, child) in t {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            leaf => out.push((path.clone(), leaf.clone())),
        }
    }
    walk(tree, &mut Vec::new(), &mut out);
    out
}

fn set(tree: &mut toml::Value, path: &[String], value: toml::Value) {
    let mut node = tree;
    for key in &path[..path.len() - 1] {
        node = node
            .as_table_mut()
            .and_then(|t| t.get_mut(key))
            .expect("path comes from the tree");
    }
    if let Some(t) = node.as_table_mut() {
        t.insert(path[path.len() - 1].clone(), value);
    }
}

/// Reads an environment value as the type the key has: numbers, booleans, comma-separated lists.
fn env_value(like: &toml::Value, raw: &str) -> Result<toml::Value> {
    Ok(match like {
        toml::Value::Integer(_) => {
            toml::Value::Integer(raw.trim().parse().context("expected a whole number")?)
        }
        toml::Value::Boolean(_) => {
            toml::Value::Boolean(raw.trim().parse().context("expected true or false")?)
        }
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kuvert.example.toml");
        let from_file = Config::load(Some(&path), vec![], false).expect("the example loads");
        assert_eq!(
            from_file,
            Config::default(),
            "kuvert.example.toml documents the defaults"
        );
    }

    #[test]
    fn dev_captures_unless_the_file_says_otherwise() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9000\"\n").expect("write");
        let dev = Config::load(Some(&file), vec![], true).expect("loads");
        assert_eq!(dev.delivery.mode, kuvert_mta::Mode::Capture);
        std::fs::write(&file, "[delivery]\nmode = \"mx\"\n").expect("write");
        let dev = Config::load(Some(&file), vec![], true).expect("loads");
        assert_eq!(dev.delivery.mode, kuvert_mta::Mode::Mx, "the file wins");
        assert_eq!(
            Config::load(None, vec![], false)
                .expect("loads")
                .delivery
                .mode,
            kuvert_mta::Mode::Mx
        );
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9000\"\n[plans.free]\nevent_retention_months = 3\nmonthly_quota = 10\n").expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("KUVERT_HTTP_LISTEN", "127.0.0.1:9100"),
                ("KUVERT_DNS_NAMESERVERS", "127.0.0.1:5353, 10.0.0.1"),
                ("KUVERT_PLANS_PREMIUM_MONTHLY_QUOTA", "7"),
                ("KUVERT_DELIVERY_MAX_AGE", "1d"),
                ("PATH", "/bin"),
            ]),
            false,
        )
        .expect("loads");
        assert_eq!(c.delivery.max_age.0.as_secs(), 86_400);
        assert_eq!(c.http.listen, "127.0.0.1:9100");
        assert_eq!(c.plans["free"].monthly_quota, 10);
        assert_eq!(c.plans["premium"].monthly_quota, 7);
        assert_eq!(c.nameservers().expect("valid").len(), 2);
    }

    #[test]
    fn mistakes_name_the_key() {
        let err = |pairs: &[(&str, &str)]| {
            format!(
                "{:#}",
                Config::load(None, env(pairs), false).expect_err("refused")
            )
        };
        assert!(
            err(&[("KUVERT_HTTP_LISTN", "x")])
                .contains("KUVERT_HTTP_LISTN is not a configuration key")
        );
        assert!(err(&[("KUVERT_HTTP_LISTEN", "nowhere")]).contains("[http] listen"));
        assert!(
            err(&[("KUVERT_LIMITS_MAX_RECIPIENTS", "many")])
                .contains("KUVERT_LIMITS_MAX_RECIPIENTS")
        );
        assert!(err(&[("KUVERT_DATABASE_URL", "mysql://x")]).contains("[database] url"));
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:1\"\nport = 3\n").expect("write");
        let msg = format!(
            "{:#}",
            Config::load(Some(&file), vec![], false).expect_err("refused")
        );
        assert!(msg.contains("port"), "{msg}");
    }
}
