//! A latency histogram for `/metrics` (Prometheus text format): fixed buckets of atomic
//! counters, so recording is a few relaxed increments and never blocks.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in milliseconds, fine enough to read a p99 from.
const BOUNDS_MS: [f64; 20] = [
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0, 200.0,
    300.0, 500.0, 1000.0, 5000.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// One per bound, and the last for what is above them all.
    buckets: [AtomicU64; BOUNDS_MS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let i = BOUNDS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(BOUNDS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// `name_bucket{le=...}` (cumulative, in seconds), `name_sum` and `name_count`.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Ordering::Relaxed);
            let le = BOUNDS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |ms| format!("{}", ms / 1000.0));
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {total}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let h = Histogram::default();
        for ms in [1, 1, 4, 60_000] {
            h.record(Duration::from_millis(ms));
        }
        let mut out = String::new();
        h.render("t", "Test.", &mut out);
        assert!(out.contains("t_bucket{le=\"0.001\"} 2\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"5\"} 3\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(
            out.contains("t_count 4\n") && out.contains("t_sum 60.006\n"),
            "{out}"
        );
    }
}
