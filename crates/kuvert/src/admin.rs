//! Admin subcommands: what an operator does from the shell. Each prints a short text, or
//! JSON with `--json`.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kuvert_core::account::{CompanyProfile, Plan, Region};
use kuvert_core::apikey::Scope;
use kuvert_store::Domain;
use serde_json::json;

use crate::instance::Instance;

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Create an account with its owner.
    Create {
        #[arg(long)]
        email: String,
        /// At least 8 characters, with a letter, a digit and a special character.
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "free")]
        plan: Plan,
        #[arg(long, default_value = "eu")]
        region: Region,
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        country: Option<String>,
    },
    /// Show an account.
    Show { account: String },
    /// Print a copy of every personal datum held about the account (JSON), for its holder.
    Export { account: String },
    /// Put the account on hold at its holder's request (nothing is processed, data is
    /// stored), or with --lift take it off.
    Restrict {
        account: String,
        #[arg(long)]
        lift: bool,
    },
    /// Lift the pause of an account's sending (set when its bounce or complaint rate passed
    /// its plan's limit): its held mail goes out and it may send again. Audited.
    Unsuspend { account: String },
    /// Delete an account at its holder's request: it stops at once, its data key is
    /// destroyed, the owner is told by e-mail, its rows go after [retention]
    /// deleted_accounts.
    Delete {
        account: String,
        /// Confirms that this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Send the account's mail from an IP pool of [delivery.pools]; without POOL, from the
    /// default address again.
    Pool {
        account: String,
        pool: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Create an API key; it is printed once.
    Create {
        /// Account id or the e-mail of one of its users.
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "full")]
        scope: Scope,
        #[arg(long, default_value = "")]
        name: String,
        /// Makes it an SMTP-IP credential (scope send): clients connecting from this network
        /// (CIDR, repeatable) submit over SMTP without AUTH.
        #[arg(long = "smtp-ip")]
        smtp_ip: Vec<kuvert_core::net::IpNetwork>,
    },
    /// List an account's keys.
    List {
        #[arg(long)]
        account: String,
    },
    /// Revoke a key.
    Revoke {
        #[arg(long)]
        account: String,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Add a sending domain; prints the DNS records to publish.
    Add {
        #[arg(long)]
        account: String,
        name: String,
        /// Needs no DNS verification (for trials; never for real mail).
        #[arg(long)]
        sandbox: bool,
    },
    /// Check a domain's DNS records.
    Verify {
        name: String,
        /// The operator's override: mark it verified without looking.
        #[arg(long)]
        skip_dns: bool,
    },
    /// List an account's domains.
    List {
        #[arg(long)]
        account: String,
    },
    /// Send the domain's mail from an IP pool of [delivery.pools] (before the account's);
    /// without POOL, the domain follows its account again.
    Pool { name: String, pool: Option<String> },
    /// Replace the domain's DKIM key with a new one under a new selector. The old key signs
    /// until `verify` (or the server's own check) finds the new record in DNS; then the new
    /// one signs, and the old record stays listed for [domains] dkim_retire_after.
    RotateDkim {
        name: String,
        #[arg(long, default_value = "rsa")]
        algorithm: kuvert_core::domain::DkimAlgorithm,
    },
    /// Give the domain a key of another algorithm (Ed25519 beside RSA): once its record is
    /// published and verified, messages carry both signatures.
    AddDkim {
        name: String,
        #[arg(long)]
        algorithm: kuvert_core::domain::DkimAlgorithm,
    },
}

#[derive(Subcommand)]
pub enum ContactsCmd {
    /// Import a CSV file (a header row with an `email` column, optionally `name`, and a
    /// column per defined property), with a progress bar. The same job as `POST
    /// /v1/imports`: sensitive-looking or unknown columns stop it for review.
    Import {
        file: std::path::PathBuf,
        #[arg(long)]
        account: String,
        /// The list (id or name) to subscribe the contacts to.
        #[arg(long)]
        list: Option<String>,
        #[arg(long, default_value = "add")]
        mode: kuvert_core::contact::ImportMode,
        /// The consent wording (or its version) to record.
        #[arg(long)]
        consent_text: Option<String>,
        /// Leave this column out (may be given more than once).
        #[arg(long = "drop")]
        drop_columns: Vec<String>,
        /// Import sensitive-looking columns that are not dropped.
        #[arg(long)]
        accept_sensitive: bool,
    },
    /// Write every contact (of a list, or of the account) with properties, subscriptions
    /// and consent records.
    Export {
        #[arg(long)]
        account: String,
        #[arg(long)]
        list: Option<String>,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// The file to write; standard output without it.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

/// A list an operator names, by id or by name.
async fn find_list(
    i: &Instance,
    account: &kuvert_core::id::AccountId,
    name: &str,
) -> Result<kuvert_store::List> {
    i.store
        .lists(account)
        .await?
        .into_iter()
        .find(|l| l.id.as_str() == name || l.settings.name == name)
        .with_context(|| format!("no list {name:?} in this account"))
}

/// Writes an export to a file or standard output.
struct FileSink(Box<dyn std::io::Write + Send>);

impl kuvert_admin::export::ExportSink for FileSink {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), kuvert_admin::AdminError> {
        self.0
            .write_all(bytes)
            .map_err(|e| kuvert_admin::AdminError::Export(e.to_string()))
    }
}

pub async fn contacts(i: &Instance, cmd: ContactsCmd, json_out: bool) -> Result<()> {
    use kuvert_admin::contacts::import::{Importer, Upload};
    use kuvert_core::contact::ImportState;
    match cmd {
        ContactsCmd::Import {
            file,
            account,
            list,
            mode,
            consent_text,
            drop_columns,
            accept_sensitive,
        } => {
            let a = find_account(i, &account).await?;
            let list = match list {
                Some(l) => Some(find_list(i, &a.id, &l).await?.id),
                None => None,
            };
            let id = i
                .store
                .create_import(&a.id, list.as_ref(), mode, consent_text.as_deref())
                .await?;
            let mut upload = Upload::new(
                &i.store,
                a.id.clone(),
                id.clone(),
                i.config.contacts.max_import_bytes,
            );
            let mut f = std::fs::File::open(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf)?;
                if n == 0 {
                    break;
                }
                upload.push(&buf[..n]).await?;
            }
            upload.finish().await?;
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let importer =
                Importer::new(i.store.clone(), &format!("cli.{}", i.node_id()?), stopped);
            // The progress bar reads the import's counters while the job runs.
            let bar = {
                let (store, account, id) = (i.store.clone(), a.id.clone(), id.clone());
                tokio::spawn(async move {
                    loop {
                        if let Ok(imp) = store.import(&account, id.as_str()).await
                            && imp.total > 0
                        {
                            let width = 40;
                            let done = (imp.processed.min(imp.total) * width / imp.total) as usize;
                            eprint!(
                                "\r[{}{}] {}/{} rows",
                                "#".repeat(done),
                                ".".repeat((width as usize).saturating_sub(done)),
                                imp.processed,
                                imp.total
                            );
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                })
            };
            let mut worked = importer.run_one(&a.id, &id).await?;
            let imp = i.store.import(&a.id, id.as_str()).await?;
            if imp.state == ImportState::Review {
                let review = kuvert_admin::contacts::import::Review::of(
                    &imp.findings,
                    &drop_columns,
                    accept_sensitive,
                );
                let blocked = review.unanswered;
                if !blocked.is_empty() {
                    bar.abort();
                    bail!(
                        "import {id} waits for review: {}. Run again with --drop COLUMN (or --accept-sensitive), or confirm it with POST /v1/imports/{id}/confirm",
                        blocked.join(", ")
                    );
                }
                i.store
                    .confirm_import(&a.id, id.as_str(), &review.dropped)
                    .await?;
                worked = importer.run_one(&a.id, &id).await?;
            }
            bar.abort();
            if !worked {
                bail!(
                    "import {id} is being worked by a running server: follow it with GET /v1/imports/{id}"
                );
            }
            let imp = i.store.import(&a.id, id.as_str()).await?;
            eprintln!();
            print(
                json_out,
                json!({"id": imp.id, "state": imp.state, "total": imp.total, "created": imp.created,
                    "updated": imp.updated, "skipped": imp.skipped, "failed": imp.failed, "error": imp.error}),
                || {
                    format!(
                        "import {}: {}; {} rows, {} created, {} updated, {} skipped, {} failed{}",
                        imp.id,
                        imp.state,
                        imp.total,
                        imp.created,
                        imp.updated,
                        imp.skipped,
                        imp.failed,
                        imp.error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )
                },
            );
        }
        ContactsCmd::Export {
            account,
            list,
            format,
            output,
        } => {
            let a = find_account(i, &account).await?;
            let list = match list {
                Some(l) => Some(find_list(i, &a.id, &l).await?.id),
                None => None,
            };
            let format = match format.as_str() {
                "csv" => kuvert_admin::contacts::Format::Csv,
                "json" => kuvert_admin::contacts::Format::Json,
                other => bail!("--format is csv or json, not {other:?}"),
            };
            let out: Box<dyn std::io::Write + Send> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let mut sink = FileSink(out);
            kuvert_admin::contacts::export(
                &i.store,
                &a.id,
                list.as_ref().map(|l| l.as_str()),
                format,
                &mut sink,
            )
            .await?;
            sink.0.flush()?;
        }
    }
    Ok(())
}

/// A pool name must be one the configuration defines.
fn known_pool(i: &Instance, pool: Option<&str>) -> Result<()> {
    if let Some(p) = pool
        && !i.config.delivery.pools.contains_key(p)
    {
        let known: Vec<&str> = i.config.delivery.pools.keys().map(String::as_str).collect();
        bail!(
            "no IP pool {p:?} in [delivery.pools] (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(())
}

/// The account an operator names (by id or owner address).
async fn find_account(i: &Instance, name: &str) -> Result<kuvert_store::Account> {
    i.store.find_account(name).await.context("no such account")
}

fn print(json_out: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialise")
        );
    } else {
        println!("{}", text());
    }
}

pub async fn account(i: &Instance, cmd: AccountCmd, json_out: bool) -> Result<()> {
    match cmd {
        AccountCmd::Create {
            email,
            password,
            plan,
            region,
            company,
            country,
        } => {
            let (account, user) = kuvert_admin::create_account(
                &i.store,
                kuvert_admin::AccountRequest {
                    email,
                    password,
                    plan,
                    region,
                    company: CompanyProfile {
                        company,
                        country,
                        ..Default::default()
                    },
                    owner: Default::default(),
                },
            )
            .await?;
            print(
                json_out,
                json!({"id": account.id, "plan": plan, "region": region, "owner": {"id": user.id, "email": user.email}}),
                || {
                    format!(
                        "created account {} ({plan}, {region}) with owner {}",
                        account.id, user.email
                    )
                },
            );
        }
        AccountCmd::Show { account } => {
            let a = find_account(i, &account).await?;
            operator_audit(i, &a.id, "read the account").await?;
            let users = i.store.users(&a.id).await?;
            let users: Vec<_> = users
                .iter()
                .map(|u| json!({"id": u.id, "email": u.email, "role": u.role}))
                .collect();
            let paused = i.store.suspension(&a.id).await?;
            let v = json!({"id": a.id, "plan": a.plan, "region": a.region, "status": a.status, "company": a.profile.company,
                "created_at": a.created_at.to_rfc3339(), "users": users,
                "paused": paused.map(|p| json!({"reason": p.to_string(), "figures": p}))});
            print(json_out, v.clone(), || {
                serde_json::to_string_pretty(&v).expect("serialises")
            });
        }
        AccountCmd::Export { account } => {
            let a = find_account(i, &account).await?;
            operator_audit(i, &a.id, "exported the account's data").await?;
            let export = kuvert_admin::rights::access(&i.store, &a.id, "the operator").await?;
            println!("{}", serde_json::to_string_pretty(&export)?);
        }
        AccountCmd::Restrict { account, lift } => {
            let a = find_account(i, &account).await?;
            operator_audit(
                i,
                &a.id,
                if lift {
                    "lifted the restriction"
                } else {
                    "restricted the account"
                },
            )
            .await?;
            kuvert_admin::rights::restrict(&i.store, &a.id, !lift, "the operator").await?;
            let status = i.store.account_state(&a.id).await?.status;
            print(json_out, json!({"id": a.id, "status": status}), || {
                format!("{} is {status}", a.id)
            });
        }
        AccountCmd::Unsuspend { account } => {
            let a = find_account(i, &account).await?;
            let who = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            if !kuvert_admin::reputation::unsuspend(&i.store, &a.id, &who).await? {
                bail!("{} is not suspended", a.id);
            }
            let status = i.store.account_state(&a.id).await?.status;
            print(json_out, json!({"id": a.id, "status": status}), || {
                format!("{} is {status}: its held mail goes out", a.id)
            });
        }
        AccountCmd::Delete { account, yes } => {
            if !yes {
                bail!("deleting an account cannot be undone: add --yes");
            }
            let a = find_account(i, &account).await?;
            operator_audit(i, &a.id, "deleted the account").await?;
            let notices = i.notices().await?;
            let purged_by = kuvert_admin::deletion::delete_account(
                &i.store,
                &notices,
                &a.id,
                kuvert_admin::deletion::Requester::Operator,
                i.config.retention.deleted_accounts.0,
            )
            .await?;
            print(
                json_out,
                json!({"id": a.id, "status": "closed", "purged_by": purged_by.to_rfc3339()}),
                || {
                    format!(
                        "{} is deleted: its data is unreadable now, its rows go by {}",
                        a.id,
                        purged_by.to_rfc3339()
                    )
                },
            );
        }
        AccountCmd::Pool { account, pool } => {
            known_pool(i, pool.as_deref())?;
            let a = find_account(i, &account).await?;
            i.store.set_account_pool(&a.id, pool.as_deref()).await?;
            print(
                json_out,
                json!({"id": a.id, "pool": pool}),
                || match &pool {
                    Some(p) => format!("{} sends from pool {p}", a.id),
                    None => format!("{} sends from the default address", a.id),
                },
            );
        }
    }
    Ok(())
}

pub async fn key(i: &Instance, cmd: KeyCmd, json_out: bool) -> Result<()> {
    match cmd {
        KeyCmd::Create {
            account,
            scope,
            name,
            smtp_ip,
        } => {
            let a = find_account(i, &account).await?;
            let (key, secret) = if smtp_ip.is_empty() {
                kuvert_admin::create_key(&i.store, &a.id, &name, scope).await?
            } else {
                kuvert_admin::create_smtp_ip_key(&i.store, &a.id, &name, &smtp_ip).await?
            };
            let scope = key.scope;
            let networks: Vec<String> = smtp_ip.iter().map(ToString::to_string).collect();
            print(
                json_out,
                json!({"id": key.id, "account": a.id, "scope": scope, "secret": secret, "smtp_ip": networks}),
                || {
                    format!(
                        "{secret}\n(key {} with scope {scope}; it is shown only this once)",
                        key.id
                    )
                },
            );
        }
        KeyCmd::List { account } => {
            let a = find_account(i, &account).await?;
            let keys = i.store.list_keys(&a.id).await?;
            let v: Vec<_> = keys
                .iter()
                .map(|k| json!({"id": k.id, "name": k.name, "prefix": k.prefix, "scope": k.scope,
                    "last_used_at": k.last_used_at.map(|t| t.to_rfc3339()), "revoked_at": k.revoked_at.map(|t| t.to_rfc3339())}))
                .collect();
            print(json_out, json!(v), || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}  {}…  {}{}",
                            k.id,
                            k.prefix,
                            k.scope,
                            if k.revoked_at.is_some() {
                                "  revoked"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeyCmd::Revoke { account, id } => {
            let a = find_account(i, &account).await?;
            let k = i.store.revoke_key(&a.id, &id).await?;
            print(
                json_out,
                json!({"id": k.id, "revoked_at": k.revoked_at.map(|t| t.to_rfc3339())}),
                || format!("revoked {}", k.id),
            );
        }
    }
    Ok(())
}

fn domain_json(d: &Domain, records: serde_json::Value) -> serde_json::Value {
    json!({"name": d.name, "sandbox": d.sandbox, "verified": d.can_send(),
        "verified_at": d.verified_at.map(|t| t.to_rfc3339()), "records": records})
}

pub async fn domain(i: &Instance, cmd: DomainCmd, json_out: bool) -> Result<()> {
    let settings = i.config.domain_settings();
    match cmd {
        DomainCmd::Add {
            account,
            name,
            sandbox,
        } => {
            let a = find_account(i, &account).await?;
            let (d, records) =
                kuvert_admin::add_domain(&i.store, &a.id, &name, &settings, sandbox).await?;
            print(json_out, domain_json(&d, json!(records)), || {
                let mut out = format!(
                    "added {}; publish these records, then run: kuvert domain verify {}\n",
                    d.name, d.name
                );
                for r in &records {
                    out.push_str(&format!(
                        "\n{} {} ({}{})\n  {}\n",
                        r.record_type,
                        r.name,
                        r.purpose,
                        if r.required { ", required" } else { "" },
                        r.value
                    ));
                }
                out
            });
        }
        DomainCmd::Verify { name, skip_dns } => {
            let d = i.store.domain(&name).await.context("no such domain")?;
            let (d, checks) =
                kuvert_admin::verify_domain(&i.store, &i.dns()?, &d, &settings, skip_dns).await?;
            print(json_out, domain_json(&d, json!(checks)), || {
                let mut out = String::new();
                for c in &checks {
                    out.push_str(&format!(
                        "{} {} {} {}\n",
                        if c.ok { "ok     " } else { "MISSING" },
                        c.record.record_type,
                        c.record.name,
                        c.record.purpose
                    ));
                }
                out.push_str(&format!(
                    "{} is {}",
                    d.name,
                    if d.can_send() {
                        "verified"
                    } else {
                        "not verified"
                    }
                ));
                out
            });
            if !d.can_send() {
                bail!("{} is not verified: required records are missing", d.name);
            }
        }
        DomainCmd::RotateDkim { name, algorithm } => {
            new_dkim_key(
                i,
                &name,
                algorithm,
                kuvert_admin::dkim::NewKey::Rotate,
                json_out,
            )
            .await?;
        }
        DomainCmd::AddDkim { name, algorithm } => {
            new_dkim_key(
                i,
                &name,
                algorithm,
                kuvert_admin::dkim::NewKey::Add,
                json_out,
            )
            .await?;
        }
        DomainCmd::Pool { name, pool } => {
            known_pool(i, pool.as_deref())?;
            i.store
                .set_domain_pool(&name, pool.as_deref())
                .await
                .context("no such domain")?;
            print(
                json_out,
                json!({"name": name, "pool": pool}),
                || match &pool {
                    Some(p) => format!("{name} sends from pool {p}"),
                    None => format!("{name} follows its account's pool"),
                },
            );
        }
        DomainCmd::List { account } => {
            let a = find_account(i, &account).await?;
            let domains = i.store.list_domains(&a.id).await?;
            let v: Vec<_> = domains
                .iter()
                .map(|d| domain_json(d, json!(null)))
                .collect();
            print(json_out, json!(v), || {
                domains
                    .iter()
                    .map(|d| {
                        format!(
                            "{}  {}",
                            d.name,
                            if d.can_send() {
                                "verified"
                            } else {
                                "unverified"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

/// A new DKIM key for a domain (audited in its account's log); prints the record to publish.
async fn new_dkim_key(
    i: &Instance,
    name: &str,
    algorithm: kuvert_core::domain::DkimAlgorithm,
    what: kuvert_admin::dkim::NewKey,
    json_out: bool,
) -> Result<()> {
    let settings = i.config.domain_settings();
    let d = i.store.domain(name).await.context("no such domain")?;
    let keys = kuvert_admin::dkim::new_key(&i.store, &d, algorithm, what, &settings).await?;
    let newest = keys
        .iter()
        .max_by_key(|k| k.created_at)
        .context("the domain has no key")?;
    operator_audit(
        i,
        &d.account_id,
        &format!(
            "made the {algorithm} DKIM key {} of {}",
            newest.selector, d.name
        ),
    )
    .await?;
    let records = kuvert_admin::records(&i.store, &d, &settings).await?;
    let record = records
        .iter()
        .find(|r| {
            r.name
                .starts_with(&format!("{}._domainkey.", newest.selector))
        })
        .context("the new key's record")?;
    print(json_out, domain_json(&d, json!(records)), || {
        format!(
            "{}: new {algorithm} key {} ({}); publish\n\nTXT {}\n  {}\n\nthen run: kuvert domain verify {}",
            d.name, newest.selector, newest.state, record.name, record.value, d.name
        )
    });
    Ok(())
}

/// `kuvert purge`: deletes what is past its retention now, or with `--dry-run` says what
/// would go.
pub async fn purge(i: &Instance, dry_run: bool, json_out: bool) -> Result<()> {
    let c = i.store.purge(&i.config.retention_policy(), dry_run).await?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    print(json_out, json!({"dry_run": dry_run, "counts": c}), || {
        format!(
            "{verb}: {} events, {} message contents, {} messages with {} recipients, {} captured messages, {} webhook deliveries",
            c.events,
            c.message_contents,
            c.messages,
            c.recipients,
            c.captures,
            c.webhook_deliveries
        )
    });
    Ok(())
}

#[derive(Subcommand)]
pub enum PrivacyCmd {
    /// Privacy requests of all accounts (or one), open ones first, the most overdue on top.
    Requests {
        #[arg(long)]
        account: Option<String>,
    },
    /// Record a request that came by other means (e-mail, letter); it is due in a month.
    Record {
        #[arg(long)]
        account: String,
        /// access, rectification, erasure, restriction or objection.
        #[arg(long)]
        right: kuvert_core::account::PrivacyRight,
        /// Who asked, and how ("ann@acme.example, by e-mail").
        #[arg(long)]
        by: String,
    },
    /// Close an open request as answered (or --refused).
    Close {
        id: String,
        #[arg(long)]
        refused: bool,
    },
}

pub async fn privacy(i: &Instance, cmd: PrivacyCmd, json_out: bool) -> Result<()> {
    use kuvert_core::account::RequestState;
    match cmd {
        PrivacyCmd::Requests { account } => {
            let account = match account {
                Some(a) => Some(find_account(i, &a).await?.id),
                None => None,
            };
            let now = i.store.clock().now();
            let list = i.store.privacy_requests(account.as_ref()).await?;
            let rows: Vec<_> = list
                .iter()
                .map(|r| {
                    json!({"id": r.id, "account": r.account_id, "right": r.right, "state": r.state,
                        "requested_by": r.requested_by, "created_at": r.created_at.to_rfc3339(),
                        "due_at": r.due_at.to_rfc3339(), "overdue": r.overdue(now)})
                })
                .collect();
            print(json_out, json!(rows), || {
                list.iter()
                    .map(|r| {
                        format!(
                            "{} {} {:<13} {:<8} due {}{}",
                            r.id,
                            r.account_id,
                            r.right,
                            r.state,
                            r.due_at.to_rfc3339(),
                            if r.overdue(now) { "  OVERDUE" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PrivacyCmd::Record { account, right, by } => {
            let a = find_account(i, &account).await?;
            operator_audit(i, &a.id, &format!("recorded a {right} request")).await?;
            let id = i
                .store
                .record_privacy_request(&a.id, right, &by, false)
                .await?;
            print(json_out, json!({"id": id}), || format!("recorded {id}"));
        }
        PrivacyCmd::Close { id, refused } => {
            let state = if refused {
                RequestState::Refused
            } else {
                RequestState::Done
            };
            i.store
                .close_privacy_request(
                    &kuvert_core::id::PrivacyRequestId::from_string(id.clone()),
                    state,
                )
                .await?;
            print(json_out, json!({"id": id, "state": state}), || {
                format!("{id} is {state}")
            });
        }
    }
    Ok(())
}

/// Records an operator's access to an account's data in its audit log.
async fn operator_audit(
    i: &Instance,
    account: &kuvert_core::id::AccountId,
    action: &str,
) -> Result<()> {
    let who = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    i.store
        .audit(
            account,
            kuvert_core::account::ActorKind::Operator,
            &who,
            action,
            None,
            None,
        )
        .await?;
    Ok(())
}

#[derive(Subcommand)]
pub enum SupportCmd {
    /// Show an account's data to support: refused unless the account granted access
    /// (PUT /v1/support/grant); logged either way.
    Show {
        account: String,
        /// Who is looking.
        #[arg(long)]
        agent: String,
    },
}

pub async fn support(i: &Instance, cmd: SupportCmd) -> Result<()> {
    match cmd {
        SupportCmd::Show { account, agent } => {
            let a = find_account(i, &account).await?;
            let data = kuvert_admin::support::support_access(&i.store, &a.id, &agent).await?;
            println!("{}", serde_json::to_string_pretty(&data)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Publish a new version of the privacy policy or the terms; every account owner is
    /// told. It takes effect 30 days after today at the earliest.
    Publish {
        /// privacy or terms.
        #[arg(long)]
        document: kuvert_core::policy::PolicyDocument,
        #[arg(long)]
        version: String,
        /// The day it takes effect (YYYY-MM-DD, UTC) or an RFC 3339 time.
        #[arg(long)]
        effective: String,
        /// Where the text can be read.
        #[arg(long)]
        url: Option<String>,
    },
    /// Every published version.
    List,
}

pub async fn policy(i: &Instance, cmd: PolicyCmd, json_out: bool) -> Result<()> {
    match cmd {
        PolicyCmd::Publish {
            document,
            version,
            effective,
            url,
        } => {
            let effective_at = kuvert_core::Timestamp::parse_rfc3339(&effective)
                .or_else(|| {
                    kuvert_core::Timestamp::parse_rfc3339(&format!("{effective}T00:00:00Z"))
                })
                .with_context(|| format!("--effective {effective:?} is not YYYY-MM-DD"))?;
            let notices = i.notices().await?;
            let told = kuvert_admin::policy::publish(
                &i.store,
                &notices,
                document,
                &version,
                effective_at,
                url,
            )
            .await?;
            print(
                json_out,
                json!({"document": document, "version": version, "effective_at": effective_at.to_rfc3339(), "notified": told}),
                || {
                    format!(
                        "{document} {version} takes effect on {}; {told} account owners are told",
                        effective_at.to_rfc3339()
                    )
                },
            );
        }
        PolicyCmd::List => {
            let versions = i.store.policy_versions().await?;
            let rows: Vec<_> = versions
                .iter()
                .map(|v| json!({"document": v.document, "version": v.version, "effective_at": v.effective_at.to_rfc3339(), "published_at": v.published_at.to_rfc3339(), "url": v.url}))
                .collect();
            print(json_out, json!(rows), || {
                versions
                    .iter()
                    .map(|v| {
                        format!(
                            "{} {} effective {}",
                            v.document,
                            v.version,
                            v.effective_at.to_rfc3339()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum TemplatesCmd {
    /// The account's templates with their versions.
    List {
        #[arg(long)]
        account: String,
    },
    /// Create a template from a file, or add the file as a new version of an existing one.
    Save {
        name: String,
        /// The MJML or HTML source.
        file: std::path::PathBuf,
        #[arg(long)]
        account: String,
        /// mjml or html; from the file's extension (.mjml) when absent.
        #[arg(long)]
        engine: Option<String>,
        /// The version's subject, with variables.
        #[arg(long)]
        subject: Option<String>,
        /// The version's tag (v1, v2, ... when absent).
        #[arg(long)]
        tag: Option<String>,
        /// Make the new version the active one.
        #[arg(long)]
        activate: bool,
    },
    /// Render a version with sample variables (a JSON object) and print its parts.
    Preview {
        name: String,
        #[arg(long)]
        account: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long, default_value = "{}")]
        variables: String,
    },
}

pub async fn templates(i: &Instance, cmd: TemplatesCmd, json_out: bool) -> Result<()> {
    use kuvert_admin::templates as t;
    match cmd {
        TemplatesCmd::List { account } => {
            let a = find_account(i, &account).await?;
            let all = i.store.templates(&a.id).await?;
            let v: Vec<_> = all
                .iter()
                .map(|t| {
                    json!({"name": t.name, "description": t.description,
                        "active_version": t.active().map(|v| &v.tag),
                        "versions": t.versions.iter().map(|v| &v.tag).collect::<Vec<_>>()})
                })
                .collect();
            print(json_out, json!(v), || {
                all.iter()
                    .map(|t| {
                        format!(
                            "{}  active {}  ({} versions)",
                            t.name,
                            t.active().map_or("-", |v| v.tag.as_str()),
                            t.versions.len()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TemplatesCmd::Save {
            name,
            file,
            account,
            engine,
            subject,
            tag,
            activate,
        } => {
            let a = find_account(i, &account).await?;
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let engine = match engine.as_deref() {
                Some(e) => kuvert_template::Engine::parse(e)
                    .with_context(|| format!("--engine is mjml or html, not {e:?}"))?,
                None if file.extension().is_some_and(|x| x == "mjml") => {
                    kuvert_template::Engine::Mjml
                }
                None => kuvert_template::Engine::Html,
            };
            let version = t::VersionRequest {
                tag,
                comment: None,
                active: activate,
                source: kuvert_template::Source {
                    engine,
                    content,
                    text: None,
                    subject,
                    defaults: Default::default(),
                },
            };
            let lower = name.to_ascii_lowercase();
            let saved = match i.store.template(&a.id, &lower).await {
                Ok(_) => t::add_version(&i.store, &a.id, &lower, version).await?,
                Err(kuvert_store::StoreError::NotFound(_)) => {
                    t::create_template(&i.store, &a.id, &name, None, version).await?
                }
                Err(e) => return Err(e.into()),
            };
            operator_audit(i, &a.id, &format!("saved a version of template {lower}")).await?;
            let newest = saved.versions.first().map(|v| v.tag.clone());
            print(
                json_out,
                json!({"name": saved.name, "version": newest, "active_version": saved.active().map(|v| &v.tag)}),
                || {
                    format!(
                        "saved {} version {}",
                        saved.name,
                        newest.as_deref().unwrap_or("-")
                    )
                },
            );
        }
        TemplatesCmd::Preview {
            name,
            account,
            version,
            variables,
        } => {
            let a = find_account(i, &account).await?;
            let variables: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&variables).context("--variables is a JSON object")?;
            let using = kuvert_submit::TemplateUse {
                name: name.to_ascii_lowercase(),
                version,
                variables,
            };
            let p = t::preview(&i.acceptor(), &a.id, &using).await?;
            print(
                json_out,
                json!({"version": p.tag, "subject": p.rendered.subject, "html": p.rendered.html,
                    "text": p.rendered.text, "variables": p.variables}),
                || {
                    format!(
                        "version {}\nsubject: {}\nvariables: {}\n\n{}",
                        p.tag,
                        p.rendered.subject.as_deref().unwrap_or("-"),
                        p.variables.join(", "),
                        p.rendered.text
                    )
                },
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum CampaignsCmd {
    /// The account's campaigns, newest first, with their progress.
    List {
        #[arg(long)]
        account: String,
    },
    /// One campaign: its settings, progress and A/B result.
    Show {
        id: String,
        #[arg(long)]
        account: String,
    },
    /// Pause, resume or cancel a campaign (audited; a running server picks it up within its
    /// poll interval).
    Set {
        id: String,
        /// pause, resume or cancel.
        action: String,
        #[arg(long)]
        account: String,
    },
}

fn campaign_json(c: &kuvert_store::Campaign) -> serde_json::Value {
    let s = &c.settings;
    json!({"id": c.id.as_str(), "name": s.name, "state": c.state, "template": s.template,
        "version": s.version, "audience": s.audience, "per_hour": s.per_hour,
        "sent": c.sent, "skipped": c.skipped, "errors": c.errors, "last_error": c.last_error,
        "started_at": c.started_at.map(|t| t.to_rfc3339()),
        "finished_at": c.finished_at.map(|t| t.to_rfc3339()),
        "ab": s.ab, "ab_decide_at": c.ab_decide_at.map(|t| t.to_rfc3339()), "ab_result": c.ab_result})
}

fn campaign_line(c: &kuvert_store::Campaign) -> String {
    format!(
        "{}  {}  {}  sent {}  skipped {}  errors {}",
        c.id, c.state, c.settings.name, c.sent, c.skipped, c.errors
    )
}

pub async fn campaigns(i: &Instance, cmd: CampaignsCmd, json_out: bool) -> Result<()> {
    match cmd {
        CampaignsCmd::List { account } => {
            let a = find_account(i, &account).await?;
            let all = i.store.campaigns(&a.id).await?;
            print(
                json_out,
                json!(all.iter().map(campaign_json).collect::<Vec<_>>()),
                || all.iter().map(campaign_line).collect::<Vec<_>>().join("\n"),
            );
        }
        CampaignsCmd::Show { id, account } => {
            let a = find_account(i, &account).await?;
            let c = i.store.campaign(&a.id, &id).await?;
            let v = campaign_json(&c);
            print(json_out, v.clone(), || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        CampaignsCmd::Set {
            id,
            action,
            account,
        } => {
            let a = find_account(i, &account).await?;
            let next = match action.as_str() {
                "pause" | "resume" | "cancel" => kuvert_admin::campaigns::requested_state(&action),
                _ => None,
            }
            .with_context(|| format!("the action is pause, resume or cancel, not {action:?}"))?;
            let c = i.store.set_campaign_state(&a.id, &id, next, None).await?;
            operator_audit(i, &a.id, &format!("campaign {id}: {action}")).await?;
            print(json_out, campaign_json(&c), || campaign_line(&c));
        }
    }
    Ok(())
}
