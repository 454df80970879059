//! The engine's counters in Prometheus text.

use std::sync::atomic::Ordering;

use super::Engine;

impl Engine {
    /// The engine's counters in Prometheus text format, for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let s = &self.0.stats;
        let _ = writeln!(
            out,
            "# HELP kuvert_delivery_outcomes_total Delivery attempts by outcome.\n# TYPE kuvert_delivery_outcomes_total counter"
        );
        for (outcome, n) in [
            ("delivered", &s.delivered),
            ("deferred", &s.deferred),
            ("bounced", &s.bounced),
            ("failed", &s.failed),
        ] {
            let _ = writeln!(
                out,
                "kuvert_delivery_outcomes_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP kuvert_smtp_connections_opened_total Outbound SMTP connections opened.\n# TYPE kuvert_smtp_connections_opened_total counter\nkuvert_smtp_connections_opened_total {}",
            s.connections_opened.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kuvert_delivery_lost_leases_total Outcomes that came after their lease had passed on.\n# TYPE kuvert_delivery_lost_leases_total counter\nkuvert_delivery_lost_leases_total {}",
            s.lost_leases.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kuvert_delivery_in_flight Recipients being delivered now.\n# TYPE kuvert_delivery_in_flight gauge\nkuvert_delivery_in_flight {}",
            self.in_flight()
        );
    }
}
