//! SMTP's series in the process's one metrics registry: sessions and refused connections
//! per listener, and the answers to DATA, so that what arrives over SMTP is counted beside
//! HTTP's responses.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Labels<const N: usize> = [(&'static str, &'static str); N];

#[derive(Default)]
pub(crate) struct SmtpMetrics {
    sessions: Family<Labels<1>, Counter>,
    refused: Family<Labels<1>, Counter>,
    messages: Family<Labels<2>, Counter>,
}

impl SmtpMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "kuvert_smtpd_sessions",
            "SMTP sessions started, by listener",
            self.sessions.clone(),
        );
        registry.register(
            "kuvert_smtpd_connections_refused",
            "SMTP connections turned away by a connection limit, by listener",
            self.refused.clone(),
        );
        registry.register(
            "kuvert_smtpd_messages",
            "Answers to a message sent over SMTP (after DATA), by listener role and reply class",
            self.messages.clone(),
        );
    }

    /// Counts a session of the listener named `listener` (`Listener::name`).
    pub(crate) fn session(&self, listener: &'static str) {
        self.sessions.get_or_create(&[("listener", listener)]).inc();
    }

    pub(crate) fn refused(&self, listener: &'static str) {
        self.refused.get_or_create(&[("listener", listener)]).inc();
    }

    /// Counts the reply to a message: `role` is `submission` or `inbound`.
    pub(crate) fn message(&self, role: &'static str, code: u16) {
        let class = match code / 100 {
            2 => "2xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.messages
            .get_or_create(&[("role", role), ("class", class)])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_written_by_listener_and_class() {
        let m = SmtpMetrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.session("submission");
        m.session("submission");
        m.refused("inbound");
        m.message("submission", 250);
        m.message("submission", 552);
        m.message("inbound", 451);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encodes");
        for line in [
            "kuvert_smtpd_sessions_total{listener=\"submission\"} 2",
            "kuvert_smtpd_connections_refused_total{listener=\"inbound\"} 1",
            "kuvert_smtpd_messages_total{role=\"submission\",class=\"2xx\"} 1",
            "kuvert_smtpd_messages_total{role=\"submission\",class=\"5xx\"} 1",
            "kuvert_smtpd_messages_total{role=\"inbound\",class=\"4xx\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in:\n{out}");
        }
    }
}
