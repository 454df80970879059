//! The daily TLS report (RFC 8460): for each recipient domain with an MTA-STS policy that the
//! engine counted sessions for, the day's successes and failures go to the addresses its
//! `_smtp._tls` record names, by mail (through the notices account, DKIM-signed like all
//! of Kuvert's mail) or by HTTPS POST. Each day's report of a domain is claimed by one node.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use kuvert_core::Timestamp;
use kuvert_core::domain::RecordType;
use kuvert_core::mta_sts::{ReportTo, TlsReport};
use kuvert_dns::Dns;
use kuvert_dns::http::{HttpResolver, error_chain, refuse_private_literal};
use kuvert_store::Store;

use crate::AdminError;
use crate::notices::Notices;

/// How often `serve` looks for reports to send.
const LOOK_EVERY: Duration = Duration::from_secs(3600);
/// Claims of sent reports are kept this many days, then forgotten.
const KEEP_CLAIMS_DAYS: i64 = 30;
/// A day's report not sent within this many days is given up (RFC 8460 §5: retry for a day),
/// and its counts forgotten.
const GIVE_UP_DAYS: i64 = 2;
/// A day is reported this long after it ends: the nodes add what they counted every minute,
/// so by then the day's counts are complete.
const SETTLE_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
const ALLOW_PRIVATE: &str = "[delivery.mta_sts] allow_private";

pub struct TlsReporter {
    store: Store,
    dns: Dns,
    notices: Notices,
    http: reqwest::Client,
    allow_private: bool,
    /// `organization-name`, and the submitter (`[domains] hostname`).
    organization: String,
    /// `contact-info`: the notices' sender.
    contact: String,
}

impl TlsReporter {
    /// `allow_private`: POSTs to report hosts on private addresses are allowed (tests).
    /// Report mail goes out through `notices`, whose account the engine must exempt from
    /// MTA-STS (`Engine::exempt_reports_of`).
    pub fn new(
        store: Store,
        dns: Dns,
        notices: Notices,
        organization: &str,
        allow_private: bool,
        extra_roots_pem: Option<&[u8]>,
    ) -> Self {
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .dns_resolver(Arc::new(HttpResolver {
                dns: dns.clone(),
                allow_private,
                setting: ALLOW_PRIVATE,
            }))
            .user_agent("Kuvert-TLSRPT/1");
        if let Some(pem) = extra_roots_pem
            && let Ok(certs) = reqwest::Certificate::from_pem_bundle(pem)
        {
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        let contact = notices.from().address.to_string();
        Self {
            store,
            dns,
            notices,
            http: http.build().expect("an HTTP client"),
            allow_private,
            organization: organization.to_owned(),
            contact,
        }
    }

    /// Sends the reports of the days that ended (an hour ago) that no node sent yet; answers
    /// how many went out. Counts of days older than [`GIVE_UP_DAYS`] are forgotten.
    pub async fn send_due(&self) -> Result<usize, AdminError> {
        let now = self.store.clock().now();
        let today = (now.millis() - SETTLE_MS).div_euclid(DAY_MS);
        self.store
            .forget_tls_sessions_before(today - GIVE_UP_DAYS)
            .await?;
        let mut sent = 0;
        for (day, domain) in self.store.tls_reports_due(today).await? {
            if !self.store.claim_tls_report(day, &domain).await? {
                continue;
            }
            match self.send(day, &domain).await {
                Ok(to) => {
                    self.store
                        .tls_report_sent(day, &domain, &to, today - KEEP_CLAIMS_DAYS)
                        .await?;
                    sent += usize::from(!to.is_empty());
                }
                Err(e) if today - day < GIVE_UP_DAYS => {
                    tracing::info!(domain, error = %e, "TLS report not sent; tried again later");
                    self.store.release_tls_report(day, &domain).await?;
                }
                Err(e) => {
                    tracing::warn!(domain, error = %e, "TLS report given up");
                    self.store
                        .tls_report_sent(day, &domain, "", today - KEEP_CLAIMS_DAYS)
                        .await?;
                }
            }
        }
        Ok(sent)
    }

    /// Sends one report to each address the domain names; answers where it went (empty:
    /// the domain asks for none), or why it went nowhere.
    async fn send(&self, day: i64, domain: &str) -> Result<String, String> {
        let answers = self
            .dns
            .lookup(&format!("_smtp._tls.{domain}"), RecordType::Txt)
            .await
            .map_err(|e| e.to_string())?;
        let to = ReportTo::find(&answers).unwrap_or_default();
        if to.is_empty() {
            return Ok(String::new());
        }
        let policies = self
            .store
            .tls_sessions(day, domain)
            .await
            .map_err(|e| e.to_string())?;
        let begin = Timestamp(day * DAY_MS);
        let end = Timestamp((day + 1) * DAY_MS);
        let report_id = format!(
            "{}.{domain}@{}",
            begin.to_rfc3339().get(..10).unwrap_or_default(),
            self.organization
        );
        let json = TlsReport {
            organization: &self.organization,
            contact: &self.contact,
            report_id: &report_id,
            policy_domain: domain,
            begin,
            end,
            policies: &policies,
        }
        .to_json()
        .to_string();
        let filename = format!(
            "{}!{domain}!{}!{}.json",
            self.organization,
            begin.seconds(),
            end.seconds()
        );
        let (mut went, mut last) = (Vec::new(), String::new());
        for target in to {
            let result = match &target {
                ReportTo::Https(url) => self.post(url, &json).await.map(|()| url.clone()),
                ReportTo::Mailto(address) => self
                    .mail(address, domain, &report_id, &filename, &json)
                    .await
                    .map(|()| format!("mailto:{address}")),
            };
            match result {
                Ok(to) => went.push(to),
                Err(e) => last = e,
            }
        }
        if went.is_empty() {
            return Err(last);
        }
        Ok(went.join(","))
    }

    async fn post(&self, url: &str, json: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        // The resolver judges names; a literal address it never sees.
        refuse_private_literal(&parsed, self.allow_private, ALLOW_PRIVATE)?;
        let response = self
            .http
            .post(parsed)
            .header(reqwest::header::CONTENT_TYPE, "application/tlsrpt+json")
            .body(json.to_owned())
            .send()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        Ok(())
    }

    /// RFC 8460 §5.3: `multipart/report; report-type="tlsrpt"`, a line for people, the
    /// report as an `application/tlsrpt+json` attachment, and the two fields that say whose.
    async fn mail(
        &self,
        address: &str,
        domain: &str,
        report_id: &str,
        filename: &str,
        json: &str,
    ) -> Result<(), String> {
        let subject = format!(
            "Report Domain: {domain} Submitter: {} Report-ID: <{report_id}>",
            self.organization
        );
        let boundary = format!("tlsrpt-{}", kuvert_core::password::random());
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        let raw = format!(
            "From: {from}\r\nTo: <{address}>\r\nSubject: {subject}\r\n\
             TLS-Report-Domain: {domain}\r\nTLS-Report-Submitter: {org}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n\
             \r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             This is the aggregate TLS report of {org} for {domain} (RFC 8460).\r\n\
             \r\n--{boundary}\r\nContent-Type: application/tlsrpt+json\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{filename}\"\r\n\r\n{body}\r\n\
             --{boundary}--\r\n",
            from = self.notices.from(),
            org = self.organization,
            body = lines.join("\r\n"),
        );
        self.notices
            .send_raw(address, &subject, raw.into_bytes(), &["kuvert-tlsrpt"])
            .await
            .map(|_| ())
            .map_err(|e| format!("mailto:{address}: {e}"))
    }

    /// The background job of `serve`.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        let me = std::sync::Arc::new(self);
        crate::every(LOOK_EVERY, "sending TLS reports", move || {
            let me = me.clone();
            async move { me.send_due().await.map(drop) }
        })
    }
}
