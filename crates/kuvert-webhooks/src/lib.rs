//! Webhooks: every event of an account, POSTed to the account's endpoints, at least once and
//! in order, signed as Mailgun signs its webhooks.
//!
//! The outbox is written with the events (`kuvert-store`); here the dispatcher takes each
//! endpoint's oldest pending delivery, sends it, and records the outcome. A failing endpoint
//! waits with backoff (its later events wait behind it) until `give_up_after`.
//!
//! Receivers verify a request with the endpoint's signing key:
//! `signature == hex(HMAC-SHA256(signing_key, timestamp + token))`, and should refuse a
//! timestamp far from their clock and a token they have seen before. An endpoint registered
//! through Mailgun's API gets Mailgun's `event-data` ([`mailgun`]) under the same signature.

pub mod mailgun;
pub mod mailjet;

use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use kuvert_core::Timestamp;
use kuvert_core::duration::HumanDuration;
use kuvert_core::webhook::WebhookFormat;
use kuvert_dns::Dns;
pub use kuvert_dns::http::is_private;
use kuvert_dns::http::{HttpResolver, error_chain, private_refusal, refuse_private_literal};
use kuvert_store::{AttemptOutcome, Delivery, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Endpoints on private, loopback or link-local addresses are refused unless this is set
    /// (an endpoint inside the operator's own network, tests).
    pub allow_private: bool,
    /// Waits between attempts; the last one repeats.
    pub retry_schedule: Vec<HumanDuration>,
    /// A delivery still failing this long after its event is given up.
    pub give_up_after: HumanDuration,
    /// How long one request may take.
    pub timeout: HumanDuration,
    pub poll_interval: HumanDuration,
    /// Endpoints served at once.
    pub concurrency: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        let m = |min: u64| HumanDuration::secs(min * 60);
        Self {
            allow_private: false,
            retry_schedule: vec![
                HumanDuration::secs(10),
                HumanDuration::secs(30),
                m(1),
                m(5),
                m(15),
                m(30),
                m(60),
                m(120),
                m(240),
            ],
            give_up_after: HumanDuration::secs(24 * 3600),
            timeout: HumanDuration::secs(10),
            poll_interval: HumanDuration::secs(1),
            concurrency: 16,
        }
    }
}

/// Why an endpoint URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

const ALLOW_PRIVATE: &str = "[webhooks] allow_private";

fn refused(host: &str, ip: IpAddr) -> UrlRefused {
    UrlRefused(private_refusal(host, ip, ALLOW_PRIVATE))
}

/// The URL's form (http or https, a host) and, for a literal address, the address itself.
/// Names are judged when they are resolved ([`check_url`], and the dispatcher's resolver).
pub fn check_literal(url: &str, allow_private: bool) -> Result<reqwest::Url, UrlRefused> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| UrlRefused(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlRefused("a webhook URL is http or https".into()));
    }
    refuse_private_literal(&parsed, allow_private, ALLOW_PRIVATE).map_err(UrlRefused)?;
    Ok(parsed)
}

/// Checks an endpoint URL when it is saved: its form, and, unless `allow_private`, that every
/// address its host resolves to (through `dns`) is public. Each request is checked again by
/// the dispatcher's resolver, which is the one the connection uses: a name pointed elsewhere
/// between the two (DNS rebinding) is caught there.
pub async fn check_url(
    url: &str,
    dns: &Dns,
    allow_private: bool,
) -> Result<reqwest::Url, UrlRefused> {
    let parsed = check_literal(url, allow_private)?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    if allow_private || host.trim_start_matches('[').parse::<IpAddr>().is_ok() {
        return Ok(parsed);
    }
    let addrs = dns
        .addresses(&host)
        .await
        .map_err(|e| UrlRefused(format!("{host} does not resolve: {e}")))?;
    if addrs.is_empty() {
        return Err(UrlRefused(format!("{host} has no address")));
    }
    if let Some(ip) = addrs.iter().find(|ip| is_private(**ip)) {
        return Err(refused(&host, *ip));
    }
    Ok(parsed)
}

/// `hex(HMAC-SHA256(key, timestamp + token))`.
pub fn signature(key: &str, timestamp: &str, token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    kuvert_core::lookup::hex(&mac.finalize().into_bytes())
}

/// A new signing key: 32 random bytes, hex.
pub fn new_signing_key() -> String {
    kuvert_core::lookup::hex(&rand::random::<[u8; 32]>())
}

#[derive(Clone)]
pub struct Dispatcher(Arc<Inner>);

struct Inner {
    store: Store,
    config: WebhookConfig,
    http: reqwest::Client,
    wake: Notify,
}

impl Dispatcher {
    /// Starts the dispatcher. Endpoint names are resolved by `dns`, through a resolver that
    /// refuses private addresses (unless allowed): the request goes to the very addresses
    /// that were checked.
    pub fn start(store: Store, config: WebhookConfig, dns: Dns) -> Self {
        let resolver = Arc::new(HttpResolver {
            dns,
            allow_private: config.allow_private,
            setting: ALLOW_PRIVATE,
        });
        let http = reqwest::Client::builder()
            .dns_resolver(resolver)
            .timeout(config.timeout.0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Kuvert-Webhooks/1")
            .build()
            .expect("an HTTP client");
        let inner = Arc::new(Inner {
            store,
            config,
            http,
            wake: Notify::new(),
        });
        tokio::spawn(inner.clone().run());
        Self(inner)
    }

    /// Looks at the outbox now (after the clock moved, or new events).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }
}

impl Inner {
    async fn run(self: Arc<Self>) {
        loop {
            match self
                .store
                .take_webhook_heads(self.config.concurrency, self.config.timeout.millis() * 3)
                .await
            {
                Ok(heads) if !heads.is_empty() => {
                    let tasks: Vec<_> = heads
                        .into_iter()
                        .map(|d| tokio::spawn(self.clone().deliver(d)))
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                    // More may be due right away (the next of each endpoint).
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the webhook outbox"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval.0) => {}
            }
        }
    }

    async fn deliver(self: Arc<Self>, d: Delivery) {
        let (status, error) = match self.attempt(&d).await {
            Ok((status, group)) if (200..300).contains(&status) => {
                self.record(&d, Some(status), None, AttemptOutcome::Taken)
                    .await;
                for f in &group {
                    self.record(f, Some(status), None, AttemptOutcome::Taken)
                        .await;
                }
                return;
            }
            Ok((status, _)) => (Some(status), format!("the endpoint answered {status}")),
            Err(Attempt::Gone(why)) => {
                self.record(&d, None, Some(&why), AttemptOutcome::GiveUp)
                    .await;
                return;
            }
            Err(Attempt::Failed(why)) => (None, why),
        };
        let now = self.store.clock().now();
        let schedule = &self.config.retry_schedule;
        let wait = schedule
            .get((d.attempts as usize).min(schedule.len().saturating_sub(1)))
            .copied()
            .unwrap_or(HumanDuration::secs(60));
        let next = Timestamp(now.millis() + wait.millis());
        let outcome = if next.millis() - d.created_at.millis() > self.config.give_up_after.millis()
        {
            AttemptOutcome::GiveUp
        } else {
            AttemptOutcome::Retry(next)
        };
        self.record(&d, status, Some(&error), outcome).await;
    }

    async fn record(
        &self,
        d: &Delivery,
        status: Option<u16>,
        error: Option<&str>,
        outcome: AttemptOutcome,
    ) {
        if let Err(e) = self
            .store
            .record_webhook_attempt(d.id, status, error, outcome)
            .await
        {
            tracing::warn!(error = %e, "cannot record a webhook attempt; it will be tried again");
        }
    }

    /// Sends `d` (with, for an endpoint that takes events grouped, the deliveries of the
    /// same second behind it): the endpoint's status and the deliveries sent along.
    async fn attempt(&self, d: &Delivery) -> Result<(u16, Vec<Delivery>), Attempt> {
        let webhook = match self
            .store
            .webhook(&d.account_id, d.webhook_id.as_str())
            .await
        {
            Ok(w) => w,
            Err(StoreError::NotFound(_)) => {
                return Err(Attempt::Gone("the endpoint was deleted".into()));
            }
            Err(e) => return Err(Attempt::Failed(e.to_string())),
        };
        let event = match self.store.event_by_seq(&d.account_id, d.event_seq).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err(Attempt::Gone("the event no longer exists".into())),
            Err(e) => return Err(Attempt::Failed(e.to_string())),
        };
        // Literal addresses are checked here; names by the client's resolver as it connects.
        let url = check_literal(&webhook.url, self.config.allow_private)
            .map_err(|e| Attempt::Failed(e.to_string()))?;
        let now = self.store.clock().now();
        let timestamp = (now.millis() / 1000).to_string();
        let token = kuvert_core::lookup::hex(&rand::random::<[u8; 25]>());
        let message = || async {
            let ids: Vec<_> = event.message_id.iter().cloned().collect();
            self.store
                .message_summaries(&d.account_id, &ids)
                .await
                .map(|mut m| event.message_id.as_ref().and_then(|id| m.remove(id)))
                .map_err(|e| Attempt::Failed(e.to_string()))
        };
        let signature = signature(&webhook.signing_key, &timestamp, &token);
        let mut group = Vec::new();
        let body = match webhook.format {
            WebhookFormat::Kuvert => json!({
                "signature": {"timestamp": timestamp, "token": token, "signature": signature},
                "event-data": {
                    "id": format!("{}", event.seq),
                    "event": event.event_type.as_str(),
                    "timestamp": event.created_at.millis() as f64 / 1000.0,
                    "message-id": event.message_id.as_ref().map(ToString::to_string),
                    "recipient-id": event.recipient_id.as_ref().map(ToString::to_string),
                    "recipient": event.recipient,
                    "tags": event.tags,
                    "data": event.details,
                },
            }),
            WebhookFormat::Mailgun => json!({
                "signature": {"timestamp": timestamp, "token": token, "signature": signature},
                "event-data": mailgun::event_data(&event, message().await?.as_ref()),
            }),
            WebhookFormat::MailjetV1 | WebhookFormat::MailjetV2 => {
                let Some(e) = mailjet::event(&event, message().await?.as_ref()) else {
                    return Err(Attempt::Gone(format!(
                        "Mailjet has no callback for {}",
                        event.event_type
                    )));
                };
                if webhook.format == WebhookFormat::MailjetV2 {
                    let (more, taken) = self.same_second(d).await?;
                    group = taken;
                    let mut all = vec![e];
                    all.extend(more);
                    Value::Array(all)
                } else {
                    e
                }
            }
        };
        // Mailjet's body has no room for a signature: it goes in header fields a Mailjet
        // receiver ignores (the same three values, the same check).
        let mut request = self.http.post(url).json(&body);
        if matches!(
            webhook.format,
            WebhookFormat::MailjetV1 | WebhookFormat::MailjetV2
        ) {
            request = request
                .header("X-Kuvert-Timestamp", &timestamp)
                .header("X-Kuvert-Token", &token)
                .header("X-Kuvert-Signature", &signature);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Attempt::Failed(error_chain(&e)))?;
        Ok((response.status().as_u16(), group))
    }

    /// The Mailjet events of the deliveries behind `d` whose events happened in the same
    /// second, up to a hundred in all (Mailjet's version 2 groups a second's events), with
    /// those deliveries. One whose event is gone or has no Mailjet shape stays behind, to be
    /// given up on its own.
    async fn same_second(&self, d: &Delivery) -> Result<(Vec<Value>, Vec<Delivery>), Attempt> {
        let failed = |e: StoreError| Attempt::Failed(e.to_string());
        let until = Timestamp((d.created_at.millis().div_euclid(1000) + 1) * 1000);
        let followers = self
            .store
            .webhook_followers(d.webhook_id.as_str(), d.id, until, MAX_GROUP - 1)
            .await
            .map_err(failed)?;
        let mut events = Vec::with_capacity(followers.len());
        let mut taken = Vec::with_capacity(followers.len());
        for f in followers {
            let Some(event) = self
                .store
                .event_by_seq(&f.account_id, f.event_seq)
                .await
                .map_err(failed)?
            else {
                break;
            };
            let ids: Vec<_> = event.message_id.iter().cloned().collect();
            let message = self
                .store
                .message_summaries(&f.account_id, &ids)
                .await
                .map_err(failed)?
                .into_values()
                .next();
            // The first one that cannot go along ends the group: the order stays.
            let Some(e) = mailjet::event(&event, message.as_ref()) else {
                break;
            };
            events.push(e);
            taken.push(f);
        }
        Ok((events, taken))
    }
}

/// Events in one grouped request at most.
const MAX_GROUP: u32 = 100;

enum Attempt {
    /// Worth trying again.
    Failed(String),
    /// Nothing to send any more.
    Gone(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        for url in [
            "http://10.0.0.1/hook",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://168.63.129.16/",
            "http://[fd00:ec2::254]/",
            "http://[fd00::1]/",
            "http://100.64.1.1/",
            "http://0.1.2.3/",
            "http://[::ffff:192.168.1.1]/",
            // NAT64, 6to4 and Teredo forms of private IPv4 addresses.
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:c0a8:101::1]/",
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
            "http://[2001:0:a00:1::1]/",
        ] {
            assert!(check_literal(url, false).is_err(), "{url}");
            assert!(check_literal(url, true).is_ok(), "{url} when allowed");
        }
        for url in [
            "http://93.184.215.14/hook",
            "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
            "http://[64:ff9b::5db8:d70e]/",
            "http://hooks.example.com/",
        ] {
            assert!(check_literal(url, false).is_ok(), "{url}");
        }
        assert!(check_literal("ftp://93.184.215.14/", true).is_err());
        assert!(check_literal("not a url", true).is_err());
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_and_token() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", "what do ya want ", "for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(new_signing_key().len(), 64);
    }
}
