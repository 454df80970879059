//! E-mail addresses (RFC 5321 mailbox syntax, with UTF-8 allowed as in RFC 6531) and
//! display-name mailboxes as written in API requests: `a@b.example` or `Ann <a@b.example>`.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("the address has no '@'")]
    NoAt,
    #[error("the part before '@' is empty or longer than 64 characters")]
    LocalLength,
    #[error("the part before '@' has a character not allowed in an address: {0:?}")]
    LocalChar(char),
    #[error("the part before '@' has a leading, trailing or doubled dot")]
    LocalDots,
    #[error("the domain is not a valid host name")]
    Domain,
    #[error("the address is longer than 254 characters")]
    TooLong,
    #[error("the display name is malformed: {0}")]
    DisplayName(&'static str),
}

/// A syntactically valid address. The domain is kept in lower case; the local part as given,
/// because only the receiving server may decide whether it is case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    full: String,
    at: usize,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let at = s.rfind('@').ok_or(AddressError::NoAt)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() || local.len() > 64 {
            return Err(AddressError::LocalLength);
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(AddressError::LocalDots);
        }
        if let Some(c) = local.chars().find(|c| !is_atext(*c) && *c != '.') {
            return Err(AddressError::LocalChar(c));
        }
        let domain = domain.to_lowercase();
        if !is_host_name(&domain) {
            return Err(AddressError::Domain);
        }
        let full = format!("{local}@{domain}");
        if full.len() > 254 {
            return Err(AddressError::TooLong);
        }
        Ok(Self { full, at })
    }
    pub fn as_str(&self) -> &str {
        &self.full
    }
    pub fn local_part(&self) -> &str {
        &self.full[..self.at]
    }
    pub fn domain(&self) -> &str {
        &self.full[self.at + 1..]
    }
    /// Whether delivering to this address needs SMTPUTF8.
    pub fn needs_utf8(&self) -> bool {
        !self.full.is_ascii()
    }
    /// The form used for look-ups and suppressions: whole address in lower case.
    pub fn normalized(&self) -> String {
        self.full.to_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// RFC 5322 `atext`, widened to any non-ASCII character (RFC 6531).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
}

/// A host name of dot-separated labels: letters, digits and hyphens (or non-ASCII, for
/// internationalised names), no label starting or ending with a hyphen, at least two labels.
pub fn is_host_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 || !s.contains('.') {
        return false;
    }
    s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
            })
    })
}

/// An address with an optional display name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: EmailAddress,
}

impl Mailbox {
    /// Parses `addr` or `Display Name <addr>`; a quoted display name may contain `<` and `,`.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input.trim();
        let Some(open) = s.rfind('<') else {
            return Ok(Self {
                name: None,
                address: EmailAddress::parse(s)?,
            });
        };
        let rest = &s[open + 1..];
        let close = rest
            .find('>')
            .ok_or(AddressError::DisplayName("'<' without '>'"))?;
        if !rest[close + 1..].trim().is_empty() {
            return Err(AddressError::DisplayName("text after '>'"));
        }
        let address = EmailAddress::parse(&rest[..close])?;
        let raw_name = s[..open].trim();
        let name = raw_name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or(raw_name)
            .trim();
        if name.chars().any(char::is_control) {
            return Err(AddressError::DisplayName("control characters"));
        }
        Ok(Self {
            name: (!name.is_empty()).then(|| name.to_owned()),
            address,
        })
    }
}

/// The items of a comma-separated address list as written in a form field
/// (`Ann <a@x.example>, "Doe, Bob" <b@y.example>`): commas inside quotes or angle brackets
/// do not separate; empty items are skipped. Linear in the input.
pub fn split_address_list(input: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut angle = false;
    let mut escaped = false;
    let mut start = 0;
    let mut cuts = Vec::new();
    for (i, c) in input.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                cuts.push(&input[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    cuts.push(&input[start..]);
    cuts.into_iter().map(str::trim).filter(|s| !s.is_empty())
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "\"{}\" <{}>", n.replace('"', "'"), self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_list_splits_outside_quotes_and_brackets() {
        let items: Vec<&str> =
            split_address_list(r#"Ann <a@x.example>, "Doe, Bob" <b@y.example>;c@z.example,, "#)
                .collect();
        assert_eq!(
            items,
            [
                "Ann <a@x.example>",
                r#""Doe, Bob" <b@y.example>"#,
                "c@z.example"
            ]
        );
        assert_eq!(
            Mailbox::parse(items[1]).map(|m| m.name),
            Ok(Some("Doe, Bob".into()))
        );
        assert_eq!(split_address_list(" , ").count(), 0);
        // An escaped quote does not end the quoted name.
        assert_eq!(
            split_address_list(r#""a\", b" <a@x.example>, c@x.example"#).count(),
            2
        );
    }

    #[test]
    fn accepts_common_and_international_addresses() {
        for ok in [
            "a@example.com",
            "first.last+tag@Sub.Example.COM",
            "o'brien@x.ie",
            "jörg@müller.de",
        ] {
            EmailAddress::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert_eq!(
            EmailAddress::parse("A@EXAMPLE.com").map(|a| a.to_string()),
            Ok("A@example.com".into())
        );
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a..b@x.com",
            ".a@x.com",
            "a b@x.com",
            "a@-x.com",
            "a@x..com",
            "a\r\n@x.com",
            "a@x.com\r\nBcc: v@x.com",
            "a<b@x.com",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn parses_display_names() {
        let m = Mailbox::parse("\"Doe, Jane\" <jane@example.com>").expect("parses");
        assert_eq!(m.name.as_deref(), Some("Doe, Jane"));
        assert_eq!(m.address.as_str(), "jane@example.com");
        assert_eq!(
            Mailbox::parse("jane@example.com").expect("parses").name,
            None
        );
        assert!(Mailbox::parse("Jane <jane@example.com").is_err());
        assert!(Mailbox::parse("Jane <jane@example.com> x").is_err());
    }
}
