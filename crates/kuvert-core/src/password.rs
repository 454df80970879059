//! The password rule (the CNIL's): at least 8 characters, with at least one letter, one
//! digit and one special character. Hashes are Argon2id.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRule {
    MinLength,
    Letter,
    Digit,
    Special,
}

impl PasswordRule {
    pub fn describe(self) -> &'static str {
        match self {
            Self::MinLength => "at least 8 characters",
            Self::Letter => "at least one letter",
            Self::Digit => "at least one digit",
            Self::Special => "at least one special character",
        }
    }
}

/// Every rule the password breaks, so the refusal can name them all at once.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the password needs {}", .0.iter().map(|r| r.describe()).collect::<Vec<_>>().join(", "))]
pub struct WeakPassword(pub Vec<PasswordRule>);

pub fn check(password: &str) -> Result<(), WeakPassword> {
    let mut failed = Vec::new();
    if password.chars().count() < 8 {
        failed.push(PasswordRule::MinLength);
    }
    if !password.chars().any(char::is_alphabetic) {
        failed.push(PasswordRule::Letter);
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        failed.push(PasswordRule::Digit);
    }
    if !password
        .chars()
        .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
    {
        failed.push(PasswordRule::Special);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(WeakPassword(failed))
    }
}

/// Checks the rule, then hashes with Argon2id and a random salt (PHC string).
/// A random password that passes [`check`] whatever the draw: for accounts nobody logs in
/// to (the system account, the dev demo account).
pub fn random() -> String {
    format!("Kv-{}-0", crate::apikey::NewApiKey::generate().secret)
}

pub fn hash(password: &str) -> Result<String, WeakPassword> {
    check(password)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_else(|e| unreachable!("argon2 with default parameters cannot fail: {e}")))
}

pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_passwords_pass_the_rule() {
        for _ in 0..200 {
            assert_eq!(check(&random()), Ok(()));
        }
    }

    #[test]
    fn names_every_failed_rule() {
        assert_eq!(
            check("abcdefg!").expect_err("refused").0,
            vec![PasswordRule::Digit]
        );
        assert_eq!(
            check("abc").expect_err("refused").0,
            vec![
                PasswordRule::MinLength,
                PasswordRule::Digit,
                PasswordRule::Special
            ]
        );
        assert_eq!(
            check("12345678").expect_err("refused").to_string(),
            "the password needs at least one letter, at least one special character"
        );
        assert!(check("s3cret-pass").is_ok());
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("s3cret-pass").expect("valid");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("s3cret-pass", &h));
        assert!(!verify("s3cret-pasS", &h));
        assert!(!verify("s3cret-pass", "garbage"));
    }
}
