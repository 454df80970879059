//! Webhooks: every event of an account, POSTed to the account's endpoints, at least once and
//! in order, signed as Mailgun signs its webhooks.
//!
//! The outbox is written with the events (`kuvert-store`); here the dispatcher takes each
//! endpoint's oldest pending delivery, sends it, and records the outcome. A failing endpoint
//! waits with backoff (its later events wait behind it) until `give_up_after`.
//!
//! Receivers verify a request with the endpoint's signing key:
//! `signature == hex(HMAC-SHA256(signing_key, timestamp + token))`, and should refuse a
//! timestamp far from their clock and a token they have seen before.

use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use kuvert_core::Timestamp;
use kuvert_core::duration::HumanDuration;
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

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    // fc00::/7 unique local, fe80::/10 link-local
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// Checks an endpoint URL: http or https, and, unless `allow_private`, every address its host
/// resolves to is public. Checked when an endpoint is saved and again before each request
/// (a name can be pointed elsewhere later).
pub async fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, UrlRefused> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| UrlRefused(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlRefused("a webhook URL is http or https".into()));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| UrlRefused("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if allow_private {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| UrlRefused(format!("{host} does not resolve: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    if let Some(ip) = addrs.iter().find(|ip| is_private(**ip)) {
        return Err(UrlRefused(format!(
            "{host} is a private, loopback or link-local address ({ip}); the operator can allow those with [webhooks] allow_private"
        )));
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
    pub fn start(store: Store, config: WebhookConfig) -> Self {
        let http = reqwest::Client::builder()
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
            Ok(status) if (200..300).contains(&status) => {
                self.record(&d, Some(status), None, AttemptOutcome::Taken)
                    .await;
                return;
            }
            Ok(status) => (Some(status), format!("the endpoint answered {status}")),
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

    async fn attempt(&self, d: &Delivery) -> Result<u16, Attempt> {
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
        let url = check_url(&webhook.url, self.config.allow_private)
            .await
            .map_err(|e| Attempt::Failed(e.to_string()))?;
        let now = self.store.clock().now();
        let timestamp = (now.millis() / 1000).to_string();
        let token = kuvert_core::lookup::hex(&rand::random::<[u8; 25]>());
        let body = json!({
            "signature": {"timestamp": timestamp, "token": token, "signature": signature(&webhook.signing_key, &timestamp, &token)},
            "event-data": {
                "id": format!("{}", event.seq),
                "event": event.event_type.as_str(),
                "timestamp": event.created_at.millis() as f64 / 1000.0,
                "message-id": event.message_id.map(|m| m.to_string()),
                "recipient-id": event.recipient_id.map(|r| r.to_string()),
                "recipient": event.recipient,
                "tags": event.tags,
                "data": Value::Object(event.data),
            }
        });
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| Attempt::Failed(e.to_string()))?;
        Ok(response.status().as_u16())
    }
}

enum Attempt {
    /// Worth trying again.
    Failed(String),
    /// Nothing to send any more.
    Gone(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        for url in [
            "http://10.0.0.1/hook",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://[fd00::1]/",
            "http://100.64.1.1/",
            "http://[::ffff:192.168.1.1]/",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url}");
            assert!(check_url(url, true).await.is_ok(), "{url} when allowed");
        }
        assert!(check_url("http://93.184.215.14/hook", false).await.is_ok());
        assert!(check_url("ftp://93.184.215.14/", true).await.is_err());
        assert!(check_url("not a url", true).await.is_err());
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
