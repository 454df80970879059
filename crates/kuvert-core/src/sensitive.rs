//! Warnings about sensitive data in contact lists and contact properties. Senders are asked not
//! to upload full card numbers, bank account numbers, national ID numbers or health data; these
//! rules spot the common shapes of such data so that an import or an API call can warn, showing
//! only a masked sample back.
//!
//! Every numeric rule checks a check digit as well as the shape, so that an order number or a
//! phone number is rarely mistaken for sensitive data.

use serde::Serialize;
use utoipa::ToSchema;

use crate::account::string_enum;

string_enum! {
    /// The kind of sensitive data a value looks like.
    SensitiveKind {
        CardNumber = "card_number",
        Iban = "iban",
        NationalId = "national_id",
        Health = "health",
    }
}

impl SensitiveKind {
    /// A phrase for messages: "this column looks like {describe}".
    pub fn describe(self) -> &'static str {
        match self {
            Self::CardNumber => "a payment card number",
            Self::Iban => "a bank account number (IBAN)",
            Self::NationalId => "a national identification or tax number",
            Self::Health => "health information",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::CardNumber => 0,
            Self::Iban => 1,
            Self::NationalId => 2,
            Self::Health => 3,
        }
    }
}

/// The kind of sensitive data `value` looks like, if any.
pub fn classify(value: &str) -> Option<SensitiveKind> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    // National IDs first: a French NIR is 15 digits and could pass Luhn by chance too.
    if is_us_ssn(v) || is_german_tax_id(v) || is_french_nir(v) {
        return Some(SensitiveKind::NationalId);
    }
    if is_iban(v) {
        return Some(SensitiveKind::Iban);
    }
    if is_card_number(v) {
        return Some(SensitiveKind::CardNumber);
    }
    if is_icd10_code(v) || has_health_word(v) {
        return Some(SensitiveKind::Health);
    }
    None
}

/// For a single property set through the API: its kind and a masked sample to show back.
pub fn check_value(value: &str) -> Option<(SensitiveKind, String)> {
    let kind = classify(value)?;
    Some((kind, mask_as(kind, value.trim())))
}

/// A sample of `value` safe to show back: the last 4 letters or digits kept (the last 2 when
/// there are fewer than 8), every other letter or digit replaced by `•`, separators kept. A
/// health value keeps only its first character.
pub fn mask(value: &str) -> String {
    let v = value.trim();
    match classify(v) {
        Some(kind) => mask_as(kind, v),
        None => mask_generic(v),
    }
}

const BULLET: char = '•';

/// Bullets after a health value's first character, at most: a free-text note need not come
/// back as a line of bullets as long as itself.
const MAX_HEALTH_BULLETS: usize = 15;

fn mask_as(kind: SensitiveKind, value: &str) -> String {
    match kind {
        // The tail of a word tells more than the tail of a number, so only the head is kept.
        SensitiveKind::Health => {
            let mut chars = value.chars();
            let mut out = String::new();
            if let Some(first) = chars.next() {
                out.push(first);
            }
            let rest = chars.count().min(MAX_HEALTH_BULLETS);
            out.extend(std::iter::repeat_n(BULLET, rest));
            out
        }
        _ => mask_generic(value),
    }
}

fn mask_generic(value: &str) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    // A short value shows at most half of itself, so one of 2 characters shows only 1.
    let keep = if total >= 8 { 4 } else { (total / 2).min(2) };
    let hide = total - keep;
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            seen += 1;
            if seen <= hide { BULLET } else { c }
        })
        .collect()
}

/// Masked samples kept per kind in a column scan.
const MAX_SAMPLES: usize = 3;

/// What a column scan found: the column holds values of `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Finding {
    pub kind: SensitiveKind,
    /// Values of the column that look like `kind`.
    pub matches: u64,
    /// Non-empty values in the column.
    pub values: u64,
    /// Up to 3 masked examples.
    pub samples: Vec<String>,
}

/// Scans one column of an import, value by value.
#[derive(Clone, Debug, Default)]
pub struct ColumnScan {
    values: u64,
    hits: [u64; 4],
    samples: [Vec<String>; 4],
}

impl ColumnScan {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&mut self, value: &str) {
        let v = value.trim();
        if v.is_empty() {
            return;
        }
        self.values += 1;
        if let Some(kind) = classify(v) {
            let i = kind.index();
            self.hits[i] += 1;
            if self.samples[i].len() < MAX_SAMPLES {
                self.samples[i].push(mask_as(kind, v));
            }
        }
    }

    /// The column is sensitive when at least a fifth of its non-empty values are of one kind.
    /// A check digit passes by chance for one value in ten (Luhn) or in a hundred (mod 97), so
    /// a column of order numbers has a few stray hits: they stay well under a fifth. A column
    /// that really holds card numbers stays over it even with many typos or blanks filled in
    /// with placeholders. Where several kinds pass, the most frequent one is reported.
    pub fn finding(&self) -> Option<Finding> {
        let kind = SensitiveKind::ALL
            .iter()
            .copied()
            .filter(|k| {
                let hits = self.hits[k.index()];
                hits >= 1 && hits.saturating_mul(5) >= self.values
            })
            // `max_by_key` keeps the last of equals; reversing keeps the first in `ALL`.
            .rev()
            .max_by_key(|k| self.hits[k.index()])?;
        Some(Finding {
            kind,
            matches: self.hits[kind.index()],
            values: self.values,
            samples: self.samples[kind.index()].clone(),
        })
    }
}

/// The value's digits when it is made only of digits and the given separators.
fn digits_with(value: &str, separators: &[char]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    for c in value.chars() {
        if let Some(d) = c.to_digit(10) {
            // `to_digit(10)` is below 10, so it fits.
            out.push(d as u8);
        } else if !separators.contains(&c) {
            return None;
        }
    }
    Some(out)
}

/// 13 to 19 digits, Luhn-valid (ISO/IEC 7812), not one digit repeated.
fn is_card_number(value: &str) -> bool {
    let Some(digits) = digits_with(value, &[' ', '-']) else {
        return false;
    };
    (13..=19).contains(&digits.len()) && !all_same(&digits) && luhn_ok(&digits)
}

fn all_same(digits: &[u8]) -> bool {
    digits.windows(2).all(|w| w[0] == w[1])
}

/// Luhn: from the right, every second digit doubled (minus 9 when over 9); the sum ends in 0.
fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An IBAN (ISO 13616): country letters, two check digits, then 11 to 30 letters or digits,
/// 15 to 34 in all; spaces allowed between groups. Moving the first four characters to the end
/// and reading letters as 10 to 35 gives a number that leaves 1 when divided by 97.
fn is_iban(value: &str) -> bool {
    let compact: Vec<u8> = value.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, rest) = compact.split_at(4);
    if !head[..2].iter().all(u8::is_ascii_alphabetic)
        || !head[2..].iter().all(u8::is_ascii_digit)
        || !rest.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    // Folded one character at a time, so no number ever exceeds 97 * 100.
    let remainder = rest.iter().chain(head).fold(0u32, |acc, &b| {
        if b.is_ascii_digit() {
            (acc * 10 + u32::from(b - b'0')) % 97
        } else {
            let v = u32::from(b.to_ascii_uppercase() - b'A') + 10;
            (acc * 100 + v) % 97
        }
    });
    remainder == 1
}

/// A US Social Security Number written `AAA-GG-SSSS`. Area 000, 666 and 900 to 999, group 00
/// and serial 0000 are never issued (rules of the Social Security Administration).
fn is_us_ssn(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() != 11 || b[3] != b'-' || b[6] != b'-' {
        return false;
    }
    let (area, group, serial) = (&value[..3], &value[4..6], &value[7..]);
    let all_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if !(all_digits(area) && all_digits(group) && all_digits(serial)) {
        return false;
    }
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// The German tax identification number (steuerliche Identifikationsnummer, § 139b AO):
/// 11 digits, the first not 0, spaces allowed. In the first ten exactly one digit occurs twice
/// or three times (three never all side by side) and the others at most once; the eleventh is
/// a check digit by ISO/IEC 7064 MOD 11,10.
fn is_german_tax_id(value: &str) -> bool {
    let Some(d) = digits_with(value, &[' ']) else {
        return false;
    };
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let body = &d[..10];
    let mut counts = [0u8; 10];
    for &x in body {
        counts[usize::from(x)] += 1;
    }
    let repeated: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    if repeated.len() != 1 || repeated[0] > 3 {
        return false;
    }
    if body.windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) {
        return false;
    }
    mod_11_10_check_digit(body) == d[10]
}

/// ISO/IEC 7064 MOD 11,10 (a hybrid system): the running product starts at 10; for each digit
/// the sum is (digit + product) mod 10, read as 10 when 0, and the next product is
/// (2 * sum) mod 11. The check digit is 11 − product, read as 0 when that gives 10.
fn mod_11_10_check_digit(digits: &[u8]) -> u8 {
    let mut product = 10u8;
    for &d in digits {
        let mut sum = (d + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = 11 - product;
    if check == 10 { 0 } else { check }
}

/// The French social security number (NIR, numéro de sécurité sociale): 13 characters, the
/// first 1 or 2 (sex), then a key of 2 digits equal to 97 − (the 13-digit number mod 97).
/// Spaces may separate the groups. For Corsica the department is `2A` or `2B`; the key is then
/// computed with 19 and 18 in its place (INSEE's rule).
fn is_french_nir(value: &str) -> bool {
    let compact: Vec<u8> = value.bytes().filter(|b| *b != b' ').collect();
    if compact.len() != 15 {
        return false;
    }
    let mut body: Vec<u8> = compact[..13].to_vec();
    match (body[5], body[6].to_ascii_uppercase()) {
        (b'2', b'A') => (body[5], body[6]) = (b'1', b'9'),
        (b'2', b'B') => (body[5], body[6]) = (b'1', b'8'),
        _ => {}
    }
    if !body.iter().chain(&compact[13..]).all(u8::is_ascii_digit) || !matches!(body[0], b'1' | b'2')
    {
        return false;
    }
    let remainder = body
        .iter()
        .fold(0u32, |acc, &b| (acc * 10 + u32::from(b - b'0')) % 97);
    let key = u32::from(compact[13] - b'0') * 10 + u32::from(compact[14] - b'0');
    key == 97 - remainder
}

/// The shape of an ICD-10 code (WHO's International Classification of Diseases), as the whole
/// value: a letter other than U (reserved for special purposes), two digits, then optionally a
/// dot and one or two digits: `J45`, `E11.9`.
fn is_icd10_code(value: &str) -> bool {
    let b = value.as_bytes();
    let head_ok = b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[0] != b'U'
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit();
    if !head_ok {
        return false;
    }
    match &b[3..] {
        [] => true,
        [b'.', tail @ ..] => (1..=2).contains(&tail.len()) && tail.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Words that state a health condition or care, in English, German and French, lower case.
/// Kept short: each word must be unlikely outside a health context.
const HEALTH_WORDS: &[&str] = &[
    // English
    "diagnosis",
    "diagnosed",
    "diagnostic",
    "hiv",
    "diabetes",
    "diabetic",
    "pregnant",
    "pregnancy",
    "cancer",
    "depression",
    "medication",
    "disability",
    "chemotherapy",
    "epilepsy",
    "dementia",
    "psychiatric",
    // German
    "diagnose",
    "schwanger",
    "schwangerschaft",
    "krebs",
    "medikament",
    "medikamente",
    "behinderung",
    "chemotherapie",
    "epilepsie",
    "demenz",
    // French
    "diagnostique",
    "diabète",
    "diabete",
    "enceinte",
    "grossesse",
    "dépression",
    "médicament",
    "médicaments",
    "medicament",
    "handicap",
    "handicapé",
    "handicapée",
    "chimiothérapie",
    "épilepsie",
    "démence",
];

/// Whether `value` has one of `HEALTH_WORDS` as a whole word, in any case.
fn has_health_word(value: &str) -> bool {
    value
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .any(|w| HEALTH_WORDS.contains(&w.to_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tax ID check digit worked by hand from the definition, to test the code against.
    fn hand_mod_11_10(body: &str) -> u8 {
        let mut product = 10;
        for c in body.chars() {
            let d = c.to_digit(10).map_or(0, |d| d as u8);
            let s = match (d + product) % 10 {
                0 => 10,
                s => s,
            };
            product = s * 2 % 11;
        }
        match 11 - product {
            10 => 0,
            c => c,
        }
    }

    #[test]
    fn card_numbers_need_luhn_and_length() {
        assert_eq!(
            classify("4111 1111 1111 1111"),
            Some(SensitiveKind::CardNumber)
        );
        assert_eq!(
            classify("4111-1111-1111-1111"),
            Some(SensitiveKind::CardNumber)
        );
        assert_eq!(
            classify("5555555555554444"),
            Some(SensitiveKind::CardNumber)
        );
        assert_eq!(
            classify("3782 822463 10005"),
            Some(SensitiveKind::CardNumber)
        );
        // One digit off fails Luhn.
        assert_eq!(classify("4111 1111 1111 1112"), None);
        // Luhn-valid but a placeholder.
        assert_eq!(classify("0000 0000 0000 0000"), None);
        // Only spaces and dashes separate.
        assert_eq!(classify("4111.1111.1111.1111"), None);
        assert_eq!(classify("4111/1111/1111/1111"), None);
        // Too short and too long (both Luhn-valid).
        assert!(luhn_ok(&[4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 2]));
        assert_eq!(classify("424242424242"), None);
        assert_eq!(classify("42424242424242424242"), None);
    }

    #[test]
    fn ibans_need_mod_97() {
        assert_eq!(
            classify("DE89 3704 0044 0532 0130 00"),
            Some(SensitiveKind::Iban)
        );
        assert_eq!(
            classify("DE89370400440532013000"),
            Some(SensitiveKind::Iban)
        );
        assert_eq!(
            classify("GB82 WEST 1234 5698 7654 32"),
            Some(SensitiveKind::Iban)
        );
        assert_eq!(
            classify("gb82 west 1234 5698 7654 32"),
            Some(SensitiveKind::Iban)
        );
        // Wrong check digits, and a swapped pair of digits.
        assert_eq!(classify("DE88 3704 0044 0532 0130 00"), None);
        assert_eq!(classify("DE89 3704 0044 0532 0103 00"), None);
        // Too short, and a stray character.
        assert_eq!(classify("DE89 3704"), None);
        assert_eq!(classify("DE89-3704-0044-0532-0130-00"), None);
    }

    #[test]
    fn us_social_security_numbers() {
        assert_eq!(classify("123-45-6789"), Some(SensitiveKind::NationalId));
        for never_issued in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert_eq!(classify(never_issued), None, "{never_issued}");
        }
        // Without dashes it is just nine digits.
        assert_eq!(classify("123456789"), None);
        assert_eq!(classify("123-456-789"), None);
    }

    #[test]
    fn german_tax_ids_by_mod_11_10() {
        // The example of the Federal Central Tax Office; its check digit worked by hand.
        assert_eq!(hand_mod_11_10("8609574271"), 9);
        assert_eq!(mod_11_10_check_digit(&[8, 6, 0, 9, 5, 7, 4, 2, 7, 1]), 9);
        assert_eq!(classify("86095742719"), Some(SensitiveKind::NationalId));
        assert_eq!(classify("86 095 742 719"), Some(SensitiveKind::NationalId));
        // Wrong check digit, leading zero, no repeated digit, a digit four times.
        assert_eq!(classify("86095742718"), None);
        let leading_zero = format!("0609574271{}", hand_mod_11_10("0609574271"));
        assert_eq!(classify(&leading_zero), None);
        let all_distinct = format!("1234567890{}", hand_mod_11_10("1234567890"));
        assert_eq!(classify(&all_distinct), None);
        let four_times = format!("1111234567{}", hand_mod_11_10("1111234567"));
        assert_eq!(classify(&four_times), None);
        // A digit three times is allowed, but not three side by side.
        let three_apart = format!("1213145678{}", hand_mod_11_10("1213145678"));
        assert_eq!(classify(&three_apart), Some(SensitiveKind::NationalId));
        let three_adjacent = format!("1112345678{}", hand_mod_11_10("1112345678"));
        assert_eq!(classify(&three_adjacent), None);
    }

    #[test]
    fn french_nir_with_key() {
        // 1841276451089 mod 97 = 51, and 97 − 51 = 46.
        assert_eq!(
            classify("1 84 12 76 451 089 46"),
            Some(SensitiveKind::NationalId)
        );
        assert_eq!(classify("184127645108946"), Some(SensitiveKind::NationalId));
        assert_eq!(classify("1 84 12 76 451 089 47"), None);
        // The first digit is the sex, 1 or 2.
        assert_eq!(classify("5 84 12 76 451 089 46"), None);
        // Corsica: 2A counts as 19 (2690519123456 mod 97 = 9, key 88), 2B as 18 (key 68).
        assert_eq!(
            classify("2 69 05 2A 123 456 88"),
            Some(SensitiveKind::NationalId)
        );
        assert_eq!(
            classify("1 69 05 2B 123 456 68"),
            Some(SensitiveKind::NationalId)
        );
        assert_eq!(classify("2 69 05 2A 123 456 87"), None);
    }

    #[test]
    fn health_codes_and_words() {
        assert_eq!(classify("E11.9"), Some(SensitiveKind::Health));
        assert_eq!(classify("J45"), Some(SensitiveKind::Health));
        assert_eq!(classify("F32.10"), Some(SensitiveKind::Health));
        // Only as the whole value, and not the U chapter or a malformed tail.
        assert_eq!(classify("see E11.9"), None);
        assert_eq!(classify("U07.1"), None);
        assert_eq!(classify("E11."), None);
        assert_eq!(classify("E11.123"), None);
        assert_eq!(classify("E1"), None);
        for text in [
            "Type 2 diabetes",
            "HIV-positive",
            "Diagnosis pending",
            "schwanger",
            "Krebs im Stadium II",
            "Medikament: Metformin",
            "enceinte de 5 mois",
            "diabète",
            "prend un médicament",
            "MÉDICAMENT",
        ] {
            assert_eq!(classify(text), Some(SensitiveKind::Health), "{text}");
        }
        // Whole words only.
        assert_eq!(classify("Krebsstraße 4"), None);
        assert_eq!(classify("archive"), None);
        assert_eq!(classify("Newsletter subscriber"), None);
    }

    #[test]
    fn ordinary_values_are_not_flagged() {
        for value in [
            "+49 30 1234567",
            "+1 (415) 555-2671",
            "030 12345678",
            "0151 23456789",
            "415-555-2671",
            "ORD-2024-118734",
            "100234987",
            "4000123456789",
            "2024-05-17",
            "DE123456789",
            "Ann Smith",
            "ann@example.com",
            "",
            "   ",
        ] {
            assert_eq!(classify(value), None, "{value:?}");
        }
    }

    #[test]
    fn masks_keep_separators_and_the_tail() {
        assert_eq!(mask("4111 1111 1111 1111"), "•••• •••• •••• 1111");
        assert_eq!(mask("123-45-6789"), "•••-••-6789");
        assert_eq!(
            mask("DE89 3704 0044 0532 0130 00"),
            "•••• •••• •••• •••• ••30 00"
        );
        // Fewer than 8 letters or digits: the last 2, and never more than half.
        assert_eq!(mask("AB-1234"), "••-••34");
        assert_eq!(mask("abc"), "••c");
        assert_eq!(mask("ab"), "•b");
        assert_eq!(mask("a"), "•");
        assert_eq!(mask(""), "");
        // Health values keep only their first character.
        assert_eq!(mask("E11.9"), "E••••");
        assert_eq!(mask("diabetes"), "d•••••••");
        assert_eq!(
            mask("Patient with diabetes since 2010, on insulin"),
            "P•••••••••••••••"
        );
    }

    #[test]
    fn masks_never_show_more_than_4_characters() {
        for value in [
            "4111 1111 1111 1111",
            "GB82 WEST 1234 5698 7654 32",
            "1 84 12 76 451 089 46",
            "86095742719",
            "Krebs",
            "hello world, this is long",
            "Jörg Müller-Lüdenscheidt",
            "1234567",
        ] {
            let masked = mask(value);
            let shown = masked
                .chars()
                .filter(|c| c.is_alphanumeric() && *c != BULLET)
                .count();
            assert!(shown <= 4, "{value:?} shows {shown}: {masked:?}");
            assert!(check_value(value).is_none_or(|(_, m)| m == masked));
        }
    }

    #[test]
    fn check_value_returns_kind_and_mask() {
        assert_eq!(
            check_value(" 4111 1111 1111 1111 "),
            Some((SensitiveKind::CardNumber, "•••• •••• •••• 1111".to_owned()))
        );
        assert_eq!(
            check_value("schwanger"),
            Some((SensitiveKind::Health, "s••••••••".to_owned()))
        );
        assert_eq!(check_value("Berlin"), None);
    }

    #[test]
    fn one_stray_hit_among_order_numbers_does_not_flag() {
        let mut scan = ColumnScan::new();
        // 13-digit order numbers: about one in ten passes Luhn by chance; this one does.
        scan.observe("4000123456788");
        assert!(is_card_number("4000123456788"));
        for n in 0..20u64 {
            // Luhn-invalid by construction: the last digit is one more than the valid one.
            let body = format!("{:012}", 100_000_000_000u64 + n * 7919);
            let valid = (0..10)
                .find(|c| {
                    let s = format!("{body}{c}");
                    digits_with(&s, &[]).is_some_and(|d| luhn_ok(&d))
                })
                .unwrap_or(0);
            scan.observe(&format!("{body}{}", (valid + 1) % 10));
        }
        assert_eq!(scan.finding(), None);
    }

    #[test]
    fn a_card_column_with_typos_flags() {
        let mut scan = ColumnScan::new();
        for v in [
            "4111 1111 1111 1111",
            "5555 5555 5555 4444",
            "4111 1111 1111 1112",
            "",
            "n/a",
            "4012 8888 8888 1881",
            "3782 822463 10005",
        ] {
            scan.observe(v);
        }
        let finding = scan.finding();
        assert_eq!(
            finding,
            Some(Finding {
                kind: SensitiveKind::CardNumber,
                matches: 4,
                values: 6,
                samples: vec![
                    "•••• •••• •••• 1111".into(),
                    "•••• •••• •••• 4444".into(),
                    "•••• •••• •••• 1881".into(),
                ],
            })
        );
    }

    #[test]
    fn threshold_is_one_fifth_of_non_empty_values() {
        let mut at = ColumnScan::new();
        at.observe("DE89 3704 0044 0532 0130 00");
        for _ in 0..4 {
            at.observe("Berlin");
        }
        at.observe("");
        assert_eq!(
            at.finding().map(|f| (f.kind, f.matches, f.values)),
            Some((SensitiveKind::Iban, 1, 5))
        );

        let mut under = ColumnScan::new();
        under.observe("DE89 3704 0044 0532 0130 00");
        for _ in 0..5 {
            under.observe("Berlin");
        }
        assert_eq!(under.finding(), None);

        assert_eq!(ColumnScan::new().finding(), None);
    }

    #[test]
    fn the_most_frequent_kind_wins() {
        let mut scan = ColumnScan::new();
        for v in ["J45", "E11.9", "123-45-6789", "diabetes"] {
            scan.observe(v);
        }
        let finding = scan.finding();
        assert_eq!(
            finding.as_ref().map(|f| f.kind),
            Some(SensitiveKind::Health)
        );
        assert_eq!(
            finding.map(|f| f.samples),
            Some(vec!["J••".into(), "E••••".into(), "d•••••••".into()])
        );
    }

    #[test]
    fn kinds_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&SensitiveKind::CardNumber).ok(),
            Some("\"card_number\"".to_owned())
        );
        assert_eq!(SensitiveKind::NationalId.as_str(), "national_id");
        for k in SensitiveKind::ALL {
            assert!(!k.describe().is_empty());
            assert_eq!(SensitiveKind::ALL[k.index()], *k);
        }
    }
}
