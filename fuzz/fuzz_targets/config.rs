//! The typed sections of the TOML configuration that live in library crates: `[delivery]`
//! (`kuvert_mta::DeliveryConfig`), `[smtp]` (`kuvert_smtpd::SmtpConfig`) and `[webhooks]`
//! (`kuvert_webhooks::WebhookConfig`), in one document as in `kuvert.example.toml`. The
//! binary's own `Config` is not reachable from a library; these sections hold the parsing
//! that is not plain serde (durations, addresses, routes, pools). Checked:
//! - no panic reading the text, nor in `problems()`, `limits_for`, `route_for`,
//!   `retry_after`;
//! - what reads directly reads the same through a `toml::Value` (as the binary reads it,
//!   merged over the defaults);
//! - what was read, written out again, reads back equal (durations included).
#![no_main]

use kuvert_core::duration::HumanDuration;
use kuvert_mta::DeliveryConfig;
use kuvert_smtpd::SmtpConfig;
use kuvert_webhooks::WebhookConfig;
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Sections {
    delivery: DeliveryConfig,
    smtp: SmtpConfig,
    webhooks: WebhookConfig,
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let direct = toml::from_str::<Sections>(text);
    // What reads directly reads the same through a Value. (The other way round does not
    // hold: through a Value, toml 0.8 takes a TOML date or time where a string is expected,
    // as its text; read directly, it refuses it.)
    if let Ok(d) = &direct {
        let value = toml::from_str::<toml::Value>(text).expect("read directly, so TOML");
        let via_value = value.try_into::<Sections>();
        assert_eq!(
            via_value.as_ref().ok(),
            Some(d),
            "read directly and through a Value"
        );
    }
    let Ok(mut c) = direct else {
        return;
    };
    // `problems()` reads `ca_file` from disk: a fuzzer must not open what it names.
    c.delivery.relay.ca_file.clear();
    let _ = c.delivery.problems();
    let _ = c.smtp.problems();
    for domain in ["example.com", "a.b.example.com", "", ".", "*"]
        .into_iter()
        .chain(c.delivery.routes.keys().map(String::as_str))
    {
        let _ = c.delivery.limits_for(domain);
        let _ = c.delivery.route_for(domain);
    }
    for attempts in [0, 1, 2, 7, u32::MAX] {
        let _ = c.delivery.retry_after(attempts);
    }
    let _ = c.delivery.signing_threads();

    // Written out and read again: the same. (Numbers beyond TOML's i64 cannot be written.)
    if let Ok(written) = toml::to_string(&c) {
        let again: Sections = toml::from_str(&written)
            .unwrap_or_else(|e| panic!("{written}\nwritten out, does not read back: {e}"));
        assert_eq!(again, c, "{written}");
    }
    for d in c
        .delivery
        .retry_schedule
        .iter()
        .chain([&c.smtp.data_timeout])
    {
        let shown = d.to_string();
        assert_eq!(shown.parse::<HumanDuration>().as_ref(), Ok(d), "{shown}");
    }
});
