//! The engine's series in the one metrics registry.

use prometheus_client::registry::Registry;

use super::Engine;

impl Engine {
    /// Registers the engine's counters, read at every scrape of `/metrics`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let s = &self.0.stats;
        registry.register(
            "kuvert_delivery_outcomes",
            "Delivery attempts by outcome",
            s.outcomes.clone(),
        );
        registry.register(
            "kuvert_smtp_connections_opened",
            "Outbound SMTP connections opened",
            s.connections_opened.clone(),
        );
        registry.register(
            "kuvert_delivery_lost_leases",
            "Outcomes that came after their lease had passed on",
            s.lost_leases.clone(),
        );
        registry.register(
            "kuvert_delivery_in_flight",
            "Recipients being delivered now",
            s.in_flight.clone(),
        );
    }
}
