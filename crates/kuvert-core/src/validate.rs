//! Address validation, the parts that need no DNS: role accounts, disposable providers and
//! likely typos of the big mailbox providers. Syntax is `EmailAddress::parse`'s; whether the
//! domain takes mail is looked up elsewhere and reported as a [`MailDomain`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::account::string_enum;
use crate::address::EmailAddress;

/// Local parts that name a function rather than a person: mail to them reaches a shared inbox,
/// a ticket queue or nobody, and a complaint is likelier.
const ROLE_ACCOUNTS: &[&str] = &[
    "abuse",
    "accounting",
    "accounts",
    "admin",
    "administrator",
    "billing",
    "careers",
    "compliance",
    "contact",
    "customerservice",
    "do-not-reply",
    "donotreply",
    "dpo",
    "enquiries",
    "feedback",
    "help",
    "helpdesk",
    "hostmaster",
    "hr",
    "info",
    "inquiries",
    "jobs",
    "legal",
    "mail",
    "mailer-daemon",
    "marketing",
    "media",
    "newsletter",
    "no-reply",
    "no_reply",
    "noc",
    "noreply",
    "office",
    "orders",
    "postmaster",
    "press",
    "privacy",
    "root",
    "sales",
    "security",
    "service",
    "support",
    "team",
    "webmaster",
    "www",
];

/// Whether `local_part` is a role account, ignoring case and a `+tag`.
pub fn is_role(local_part: &str) -> bool {
    let base = local_part.split('+').next().unwrap_or(local_part);
    let base = base.to_lowercase();
    ROLE_ACCOUNTS.contains(&base.as_str())
}

/// The best-known providers of throwaway inboxes. A short list on purpose: operators add their
/// own through `is_disposable_with`.
const DISPOSABLE_DOMAINS: &[&str] = &[
    "10minutemail.com",
    "10minutemail.net",
    "33mail.com",
    "burnermail.io",
    "discard.email",
    "dispostable.com",
    "emailondeck.com",
    "fakeinbox.com",
    "getnada.com",
    "nada.email",
    // Guerrilla Mail and the domains it hands out.
    "guerrillamail.com",
    "guerrillamail.net",
    "guerrillamail.org",
    "guerrillamail.biz",
    "guerrillamail.de",
    "guerrillamail.info",
    "guerrillamailblock.com",
    "grr.la",
    "pokemail.net",
    "sharklasers.com",
    "spam4.me",
    "mailcatch.com",
    "maildrop.cc",
    "mailinator.com",
    "mailinator.net",
    "mailnesia.com",
    "mintemail.com",
    "mohmal.com",
    "moakt.com",
    "mytemp.email",
    "spamgourmet.com",
    "temp-mail.io",
    "temp-mail.org",
    "tempail.com",
    "tempr.email",
    "throwawaymail.com",
    "trashmail.com",
    "trashmail.de",
    "trashmail.net",
    "yopmail.com",
    "yopmail.fr",
    "yopmail.net",
];

/// Whether `domain` or a parent of it is a known disposable provider.
pub fn is_disposable(domain: &str) -> bool {
    is_disposable_with(domain, &[])
}

/// As `is_disposable`, with the operator's own list of domains (case and a leading `@` or `.`
/// do not matter).
pub fn is_disposable_with(domain: &str, extra: &[String]) -> bool {
    let domain = normalize_domain(domain);
    let extra: Vec<String> = extra
        .iter()
        .map(|d| normalize_domain(d.trim().trim_start_matches(['@', '.'])))
        .filter(|d| !d.is_empty())
        .collect();
    // Parents too: throwaway services hand out sub-domains (`x.mailinator.com`). A bare TLD is
    // never a provider, so the walk stops at the last dot.
    let mut rest = domain.as_str();
    loop {
        if DISPOSABLE_DOMAINS.contains(&rest) || extra.iter().any(|d| d == rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => return false,
        }
    }
}

fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_lowercase()
}

/// The providers whose typos are worth a suggestion, most used first: ties go to the earlier.
const PROVIDERS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.fr",
    "yahoo.de",
    "hotmail.com",
    "hotmail.fr",
    "outlook.com",
    "live.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "mail.ru",
    "yandex.ru",
    "protonmail.com",
    "proton.me",
];

/// Real mail domains within reach of a provider above, never to be "corrected".
const NOT_TYPOS: &[&str] = &[
    "mail.com",
    "email.com",
    "ymail.com",
    "mac.com",
    "aon.com",
    "cloud.com",
    "online.de",
];

/// Wrong endings typed for `.com`.
const COM_SLIPS: &[&str] = &[
    "con", "cm", "om", "comm", "co", "cmo", "ocm", "cpm", "vom", "xom",
];

/// The longest host name (RFC 1035); anything longer is not a domain, and the distance below
/// costs time in proportion to its length.
const MAX_DOMAIN_LEN: usize = 253;

/// A common provider that `domain` is likely a typo of, e.g. `gmial.com` → `gmail.com`.
pub fn suggest(domain: &str) -> Option<String> {
    if domain.len() > MAX_DOMAIN_LEN {
        return None;
    }
    let domain = normalize_domain(domain);
    if PROVIDERS.contains(&domain.as_str()) || NOT_TYPOS.contains(&domain.as_str()) {
        return None;
    }
    let (name, tld) = domain.rsplit_once('.')?;
    if COM_SLIPS.contains(&tld) {
        let fixed = format!("{name}.com");
        if PROVIDERS.contains(&fixed.as_str()) {
            return Some(fixed);
        }
    }
    // A provider's name under another country's or a generic ending is most likely that
    // provider's own domain there (hotmail.de, gmx.at, yahoo.it, live.ca): not a typo.
    let plausible_tld = (tld.len() == 2 && tld.bytes().all(|b| b.is_ascii_lowercase()))
        || ["com", "net", "org"].contains(&tld);
    if plausible_tld
        && PROVIDERS
            .iter()
            .any(|p| p.rsplit_once('.').is_some_and(|(n, _)| n == name))
    {
        return None;
    }
    let input: Vec<char> = domain.chars().collect();
    let max = if input.len() >= 6 { 2 } else { 1 };
    let mut best: Option<(usize, &str)> = None;
    for provider in PROVIDERS {
        let p: Vec<char> = provider.chars().collect();
        let Some(d) = osa_distance(&input, &p, max) else {
            continue;
        };
        // Strictly less: an equal distance keeps the provider listed first.
        if best.is_none_or(|(b, _)| d < b) {
            best = Some((d, provider));
        }
    }
    best.map(|(_, p)| p.to_owned())
}

/// The optimal string alignment distance (Damerau–Levenshtein where no substring is edited
/// twice: insertions, deletions, substitutions and swaps of neighbours), or `None` when it is
/// over `max`. Takes time proportional to the product of the lengths.
fn osa_distance(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    // Three rows: the current one, the one before and the one before that (for swaps).
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    // The smallest cell of the row before: a swap reaches back two rows.
    let mut prev_min = 0;
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(before[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        // A later cell is at least this row's smallest, or the last row's smallest plus 1:
        // once both are over `max`, so is the answer.
        if row_min > max && prev_min >= max {
            return None;
        }
        prev_min = row_min;
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

/// What can be told about an address without asking DNS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LocalChecks {
    /// The local part names a function (`info`, `support`), not a person.
    pub role: bool,
    /// The domain is a throwaway inbox provider.
    pub disposable: bool,
    /// The address with a common provider's domain, when the domain looks like a typo of it.
    pub suggestion: Option<String>,
}

/// Role, disposable and typo checks of a parsed address; `extra_disposable` is the operator's
/// own list of disposable domains.
pub fn local_checks(addr: &EmailAddress, extra_disposable: &[String]) -> LocalChecks {
    LocalChecks {
        role: is_role(addr.local_part()),
        disposable: is_disposable_with(addr.domain(), extra_disposable),
        suggestion: suggest(addr.domain()).map(|d| format!("{}@{d}", addr.local_part())),
    }
}

string_enum! {
    /// Whether an address's domain takes mail, as DNS tells.
    MailDomain {
        /// It has an MX record, or no MX but an A or AAAA record to deliver to (RFC 5321
        /// § 5.1).
        Accepts = "accepts",
        /// It exists but has neither an MX nor an A or AAAA record: nowhere to deliver.
        NoMailServer = "no_mail_server",
        /// It publishes a null MX (RFC 7505): it states that it takes no mail.
        NullMx = "null_mx",
        /// The name does not exist (NXDOMAIN).
        DoesNotExist = "does_not_exist",
        /// The look-up failed (time-out, server failure): nothing is known.
        Unknown = "unknown",
    }
}

/// What address validation tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Validation {
    pub address: String,
    /// The address is well formed (RFC 5321, with UTF-8 as RFC 6531 allows).
    pub valid_syntax: bool,
    /// Why it is not, when it is not.
    pub reason: Option<String>,
    /// Whether the domain takes mail; absent when the syntax is wrong.
    pub mail_domain: Option<MailDomain>,
    /// Role, disposable and typo checks; absent when the syntax is wrong.
    pub checks: Option<LocalChecks>,
    /// Syntax right and the domain takes mail.
    pub deliverable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn role_accounts_ignore_case_and_tags() {
        for role in [
            "admin",
            "Postmaster",
            "INFO",
            "support+billing",
            "no-reply",
            "noreply",
            "webmaster",
            "hr",
            "root",
        ] {
            assert!(is_role(role), "{role}");
        }
        for person in ["ann", "anna.info", "infos", "admins", "j.smith+support", ""] {
            assert!(!is_role(person), "{person}");
        }
    }

    #[test]
    fn disposable_domains_and_their_parents() {
        assert!(is_disposable("mailinator.com"));
        assert!(is_disposable("Mailinator.COM."));
        assert!(is_disposable("team.mailinator.com"));
        assert!(is_disposable("sharklasers.com"));
        assert!(is_disposable("yopmail.com"));
        assert!(!is_disposable("gmail.com"));
        assert!(!is_disposable("com"));
        assert!(!is_disposable("notmailinator.com"));
        assert!(!is_disposable("mailinator.com.example.org"));
        assert!(!is_disposable(""));
    }

    #[test]
    fn operators_add_disposable_domains() {
        let extra = vec![
            "Throwaway.example".to_owned(),
            "@burner.test".to_owned(),
            " ".to_owned(),
        ];
        assert!(is_disposable_with("throwaway.example", &extra));
        assert!(is_disposable_with("x.burner.test", &extra));
        assert!(is_disposable_with("mailinator.com", &extra));
        assert!(!is_disposable_with("example", &extra));
        assert!(!is_disposable_with("throwaway.example", &[]));
    }

    #[test]
    fn suggests_common_typos() {
        for (typo, fix) in [
            ("gmial.com", "gmail.com"),
            ("gmai.com", "gmail.com"),
            ("gnail.com", "gmail.com"),
            ("hotmal.com", "hotmail.com"),
            ("hotmial.com", "hotmail.com"),
            ("gmail.con", "gmail.com"),
            ("gmail.cm", "gmail.com"),
            ("GMAIL.COMM", "gmail.com"),
            ("hotmail.co", "hotmail.com"),
            ("gmail.cmo", "gmail.com"),
            ("yaho.fr", "yahoo.fr"),
            ("yahooo.com", "yahoo.com"),
            ("outlok.com", "outlook.com"),
            ("iclould.com", "icloud.com"),
            ("gmx.nte", "gmx.net"),
            ("t-onlin.de", "t-online.de"),
            ("protonmial.com", "protonmail.com"),
        ] {
            assert_eq!(suggest(typo).as_deref(), Some(fix), "{typo}");
        }
    }

    #[test]
    fn leaves_real_domains_alone() {
        for domain in [
            "example.com",
            "gmail.com",
            "yahoo.de",
            "hotmail.de",
            "yahoo.it",
            "gmx.at",
            "gmx.com",
            "live.ca",
            "mac.com",
            "ymail.com",
            "mail.com",
            "email.com",
            "kuvert.example",
            "gmailx",
            "",
        ] {
            assert_eq!(suggest(domain), None, "{domain}");
        }
        // Distance 2 only for 6 characters or more: `ab.de` is 2 from `web.de` but too short.
        assert_eq!(suggest("ab.de"), None);
        assert_eq!(suggest("eb.de").as_deref(), Some("web.de"));
    }

    #[test]
    fn ties_go_to_the_provider_listed_first() {
        // `yahoi.fe` is 2 from both yahoo.fr and yahoo.de.
        assert_eq!(suggest("yahoi.fe").as_deref(), Some("yahoo.fr"));
    }

    #[test]
    fn long_input_returns_quickly() {
        assert_eq!(suggest(&"a".repeat(254)), None);
        let long = format!("{}.com", "g".repeat(240));
        assert_eq!(suggest(&long), None);
    }

    #[test]
    fn osa_distance_counts_swaps_as_one() {
        let d = |a: &str, b: &str| {
            let a: Vec<char> = a.chars().collect();
            let b: Vec<char> = b.chars().collect();
            osa_distance(&a, &b, 10)
        };
        assert_eq!(d("gmial.com", "gmail.com"), Some(1));
        assert_eq!(d("ca", "abc"), Some(3));
        assert_eq!(d("kitten", "sitting"), Some(3));
        assert_eq!(d("", "abc"), Some(3));
        assert_eq!(d("same", "same"), Some(0));
        let bounded = |a: &str, b: &str, max| {
            let a: Vec<char> = a.chars().collect();
            let b: Vec<char> = b.chars().collect();
            osa_distance(&a, &b, max)
        };
        assert_eq!(bounded("kitten", "sitting", 2), None);
        assert_eq!(bounded("abcdef", "badcfe", 3), Some(3));
        assert_eq!(bounded("abcdef", "badcfe", 2), None);
    }

    #[test]
    fn local_checks_of_an_address() {
        let checks = local_checks(&parse("Support+x@gmial.com"), &[]);
        assert_eq!(
            checks,
            LocalChecks {
                role: true,
                disposable: false,
                suggestion: Some("Support+x@gmail.com".into()),
            }
        );
        let checks = local_checks(&parse("ann@team.yopmail.com"), &[]);
        assert!(checks.disposable && !checks.role && checks.suggestion.is_none());
        let extra = vec!["corp.example".to_owned()];
        assert!(local_checks(&parse("ann@corp.example"), &extra).disposable);
    }

    #[test]
    fn quoted_local_parts_are_refused_by_the_parser() {
        assert!(EmailAddress::parse("\"ann smith\"@example.com").is_err());
    }

    #[test]
    fn mail_domain_states_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&MailDomain::NoMailServer).ok(),
            Some("\"no_mail_server\"".to_owned())
        );
        assert_eq!("null_mx".parse::<MailDomain>(), Ok(MailDomain::NullMx));
        assert_eq!(MailDomain::ALL.len(), 5);
    }
}
