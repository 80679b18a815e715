//! National identifiers: the enterprise USCC (GB 32100-2015) and the resident ID number
//! (GB 11643-1999), parsed once at the edge and trusted inside.
//!
//! A resident ID number never leaves this module in full: the rest of the system sees a
//! [`PersonKey`] (a keyed hash) and a [`MaskedId`].

use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// The 31 characters a USCC may contain, in value order (I, O, Z, S, V are excluded).
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights 3^(i-1) mod 31 for the first 17 USCC characters.
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
/// GB 11714 organisation-code weights (USCC positions 9-16).
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643 weights for the first 17 digits of a resident ID number.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character indexed by the weighted sum mod 11.
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Why a string is not a valid unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsccError {
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    #[error("character {position} ('{found}') is not in 0-9 A-H J-N P-R T U W-Y (I, O, S, V, Z are never used)")]
    Character { position: usize, found: char },
    #[error("organisation-code check (position 17) should be '{expected}', got '{found}'")]
    OrganisationCode { expected: char, found: char },
    #[error("check character (position 18) should be '{expected}', got '{found}'")]
    CheckCharacter { expected: char, found: char },
    /// About one valid ID number in 341 also passes both USCC checks; taken for a
    /// USCC it would be stored and logged in full as an enterprise's name. (Codes of
    /// market entities, 91/92/93, are never refused so: no ID number starts so.)
    #[error("is a resident ID number (身份证号), not a unified social credit code")]
    ResidentIdNumber,
}

/// A unified social credit code (统一社会信用代码) that passed both checksums.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

impl Uscc {
    /// Parses a USCC, accepting surrounding spaces and lowercase letters.
    pub fn parse(input: &str) -> Result<Self, UsccError> {
        let code = input.trim().to_ascii_uppercase();
        let chars: Vec<char> = code.chars().collect();
        if chars.len() != 18 {
            return Err(UsccError::Length(chars.len()));
        }
        let mut values = [0u32; 18];
        for (i, &c) in chars.iter().enumerate() {
            values[i] = uscc_value(c).ok_or(UsccError::Character {
                position: i + 1,
                found: c,
            })?;
        }
        // Positions 9-16 of an organisation code are digits or capital letters (A=10 .. Z=35);
        // USCC_ALPHABET values coincide for digits, so letters are re-valued here.
        let org_sum: u32 = chars[8..16]
            .iter()
            .zip(ORG_WEIGHTS)
            .map(|(c, w)| org_value(*c) * w)
            .sum();
        let org_expected = match 11 - org_sum % 11 {
            10 => 'X',
            11 => '0',
            d => char::from_digit(d, 10).expect("single digit"),
        };
        if chars[16] != org_expected {
            return Err(UsccError::OrganisationCode {
                expected: org_expected,
                found: chars[16],
            });
        }
        let sum: u32 = values[..17]
            .iter()
            .zip(USCC_WEIGHTS)
            .map(|(v, w)| v * w)
            .sum();
        let check = (31 - sum % 31) % 31;
        let expected = USCC_ALPHABET[check as usize] as char;
        if chars[17] != expected {
            return Err(UsccError::CheckCharacter {
                expected,
                found: chars[17],
            });
        }
        // A market entity's code (registered by market regulation: 91 enterprise, 92
        // individual business, 93 farmers' cooperative) is never a resident ID number,
        // whose first two digits are a province code (11 to 82): about one such code in
        // a thousand also passes the ID checks, and must still be taken. (A foreigner's
        // permanent-residence number, 9 and a province code, can start so; those that
        // also pass the USCC checks are the price of never refusing a market entity.)
        // Other codes are refused only when they read as someone born before 2100: a
        // code whose characters 7-14 make a date centuries ahead is no one's number.
        let reads_as_a_person =
            IdNumber::parse(&code).is_ok_and(|id| chrono::Datelike::year(&id.birth_date()) < 2100);
        if !matches!(&code[..2], "91" | "92" | "93") && reads_as_a_person {
            return Err(UsccError::ResidentIdNumber);
        }
        Ok(Uscc(code))
    }

    /// Builds a valid USCC from its first 16 characters by computing both check characters.
    /// Used by the demo seeder; returns `None` if `prefix` has a character outside the alphabet.
    pub fn complete(prefix: &str) -> Option<Self> {
        let chars: Vec<char> = prefix.chars().collect();
        if chars.len() != 16 || chars.iter().any(|c| uscc_value(*c).is_none()) {
            return None;
        }
        let org_sum: u32 = chars[8..16]
            .iter()
            .zip(ORG_WEIGHTS)
            .map(|(c, w)| org_value(*c) * w)
            .sum();
        let org = match 11 - org_sum % 11 {
            10 => 'X',
            11 => '0',
            d => char::from_digit(d, 10)?,
        };
        let mut code: String = chars.iter().collect();
        code.push(org);
        let sum: u32 = code
            .chars()
            .zip(USCC_WEIGHTS)
            .map(|(c, w)| uscc_value(c).unwrap_or(0) * w)
            .sum();
        code.push(USCC_ALPHABET[((31 - sum % 31) % 31) as usize] as char);
        Self::parse(&code).ok()
    }

    /// The 18-character code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The resource name `enterprises/{uscc}`.
    pub fn resource_name(&self) -> String {
        format!("enterprises/{}", self.0)
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn uscc_value(c: char) -> Option<u32> {
    USCC_ALPHABET
        .iter()
        .position(|&a| a as char == c)
        .map(|p| p as u32)
}

fn org_value(c: char) -> u32 {
    match c {
        '0'..='9' => c as u32 - '0' as u32,
        'A'..='Z' => c as u32 - 'A' as u32 + 10,
        _ => 0,
    }
}

/// Why a string is not a valid resident ID number. Messages never repeat the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    #[error("character {0} must be a digit")]
    NotDigit(usize),
    #[error("character 18 must be a digit or X")]
    CheckNotDigitOrX,
    #[error("characters 7-14 are not a real birth date (YYYYMMDD)")]
    BirthDate,
    #[error("characters 7-14 are a birth date that has not come yet")]
    FutureBirthDate,
    #[error("check character (position 18) should be '{expected}', got '{found}'")]
    CheckCharacter { expected: char, found: char },
    #[error("character {0} is a full-width or other non-ASCII character; type the number in half-width digits")]
    NotAscii(usize),
}

/// A resident ID number (居民身份证号码) that passed its checksum and date check.
///
/// Deliberately has no `Display` and a redacting `Debug`: it can only be turned into a
/// [`PersonKey`] or a [`MaskedId`], so it cannot reach a log line or a column by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked().as_str())
    }
}

impl IdNumber {
    /// [`IdNumber::parse`], and the birth date must not be after `today` (no one holds
    /// a number for a birth still to come).
    pub fn parse_on(input: &str, today: chrono::NaiveDate) -> Result<Self, IdNumberError> {
        let id = Self::parse(input)?;
        if id.birth_date() > today {
            return Err(IdNumberError::FutureBirthDate);
        }
        Ok(id)
    }

    /// The birth date in characters 7-14, which parsing checked is a real date.
    pub fn birth_date(&self) -> chrono::NaiveDate {
        let digits = |range: std::ops::Range<usize>| -> u32 {
            self.0[range].parse().expect("checked digits")
        };
        chrono::NaiveDate::from_ymd_opt(digits(6..10) as i32, digits(10..12), digits(12..14))
            .expect("checked date")
    }

    /// Parses an ID number, accepting surrounding spaces and a lowercase `x`. The birth
    /// date must be a real date; whether it has come yet is [`IdNumber::parse_on`]'s.
    pub fn parse(input: &str) -> Result<Self, IdNumberError> {
        let id = input.trim().to_ascii_uppercase();
        if let Some(position) = id.chars().position(|c| !c.is_ascii()) {
            // Full-width digits and Ｘ, as Chinese input methods type them.
            return Err(IdNumberError::NotAscii(position + 1));
        }
        let bytes = id.as_bytes();
        if bytes.len() != 18 {
            return Err(IdNumberError::Length(bytes.len()));
        }
        for (i, b) in bytes[..17].iter().enumerate() {
            if !b.is_ascii_digit() {
                return Err(IdNumberError::NotDigit(i + 1));
            }
        }
        if !(bytes[17].is_ascii_digit() || bytes[17] == b'X') {
            return Err(IdNumberError::CheckNotDigitOrX);
        }
        let year: i32 = id[6..10].parse().map_err(|_| IdNumberError::BirthDate)?;
        let month: u32 = id[10..12].parse().map_err(|_| IdNumberError::BirthDate)?;
        let day: u32 = id[12..14].parse().map_err(|_| IdNumberError::BirthDate)?;
        if year < 1800 || chrono::NaiveDate::from_ymd_opt(year, month, day).is_none() {
            return Err(IdNumberError::BirthDate);
        }
        let expected = Self::check_char(&bytes[..17]);
        if bytes[17] as char != expected {
            return Err(IdNumberError::CheckCharacter {
                expected,
                found: bytes[17] as char,
            });
        }
        Ok(IdNumber(id))
    }

    /// The check character for 17 leading digits (ASCII).
    pub fn check_char(digits: &[u8]) -> char {
        let sum: u32 = digits
            .iter()
            .zip(ID_WEIGHTS)
            .map(|(d, w)| (d - b'0') as u32 * w)
            .sum();
        ID_CHECK[(sum % 11) as usize] as char
    }

    /// The masked form kept and shown instead of the number: `110105********002X`.
    pub fn masked(&self) -> MaskedId {
        MaskedId(format!("{}********{}", &self.0[..6], &self.0[14..]))
    }
}

/// A masked ID number: the six-digit address code and the last four characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaskedId(String);

impl MaskedId {
    /// Wraps a masked form read back from storage.
    pub fn from_stored(masked: String) -> Self {
        MaskedId(masked)
    }

    /// The masked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The pseudonymous key a person is stored under: HMAC-SHA256(secret, ID number), in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonKey(String);

impl PersonKey {
    /// Wraps a key read back from storage.
    pub fn from_stored(key: String) -> Self {
        PersonKey(key)
    }

    /// The 64 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Derives person keys. Holds the HMAC secret, which lives in configuration, never in
/// the database, so a stolen database cannot be joined back to ID numbers.
#[derive(Clone)]
pub struct PersonKeyer {
    secret: SecretSlice<u8>,
}

impl fmt::Debug for PersonKeyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonKeyer([REDACTED])")
    }
}

impl PersonKeyer {
    /// A keyer over `secret` (at least 16 bytes is enforced by configuration).
    pub fn new(secret: Vec<u8>) -> Self {
        PersonKeyer {
            secret: secret.into(),
        }
    }

    /// The key for one ID number.
    pub fn key(&self, id: &IdNumber) -> PersonKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret())
            .expect("HMAC accepts any key length");
        mac.update(id.0.as_bytes());
        PersonKey(hex::encode(mac.finalize().into_bytes()))
    }

    /// A fingerprint of the key itself (an HMAC of a fixed text): stored beside the
    /// persons it keyed, it tells a different key from the right one without revealing
    /// either.
    pub fn fingerprint(&self) -> String {
        self.digest(b"credit-hub person key check")
    }

    /// A keyed digest of arbitrary bytes, for fingerprints of requests that may carry
    /// ID numbers (a plain hash of a short input could be reversed by trying them all).
    pub fn digest(&self, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret())
            .expect("HMAC accepts any key length");
        mac.update(b"request:");
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A person as the rest of the system knows them: never the ID number itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRef {
    pub key: PersonKey,
    pub name: String,
    pub masked_id: MaskedId,
}

impl PersonRef {
    /// Pseudonymises a person given by name and parsed ID number.
    pub fn new(keyer: &PersonKeyer, name: String, id: &IdNumber) -> Self {
        PersonRef {
            key: keyer.key(id),
            name,
            masked_id: id.masked(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn published_usccs_are_valid() {
        for code in [
            "914403001922038216",
            "91440300708461136T",
            "91330100716105852F",
            "91520000214434146R",
            "91110000710925462X",
        ] {
            assert_eq!(Uscc::parse(code).unwrap().as_str(), code);
        }
    }

    #[test]
    fn mock_usccs_that_fail_the_check_are_refused() {
        for code in [
            "91110108717809965C",
            "9133010057462616XH",
            "91110000800088421P",
        ] {
            assert!(Uscc::parse(code).is_err(), "{code}");
        }
    }

    #[test]
    fn uscc_errors_say_what_is_wrong() {
        assert_eq!(Uscc::parse("91440300"), Err(UsccError::Length(8)));
        assert_eq!(
            Uscc::parse("9144030019220382I6"),
            Err(UsccError::Character {
                position: 17,
                found: 'I'
            })
        );
        assert_eq!(
            Uscc::parse("914403001922038217"),
            Err(UsccError::CheckCharacter {
                expected: '6',
                found: '7'
            })
        );
        assert_eq!(
            Uscc::parse("914403001922038226"),
            Err(UsccError::OrganisationCode {
                expected: '1',
                found: '2'
            })
        );
    }

    /// The standard's example; malformed variants are derived from it so no other
    /// ID-shaped literal appears in the source.
    const EXAMPLE: &str = "11010519491231002X";

    fn variant(replace: &str, with: &str) -> String {
        EXAMPLE.replace(replace, with)
    }

    #[test]
    fn published_id_numbers_are_valid_and_masked() {
        let id = IdNumber::parse(&EXAMPLE.to_lowercase()).unwrap();
        assert_eq!(id.masked().as_str(), "110105********002X");
        assert!(
            IdNumber::parse("990102188001010011").is_ok(),
            "a synthetic number"
        );
    }

    #[test]
    fn id_errors_never_repeat_the_number() {
        let err = IdNumber::parse(&variant("002X", "0021")).unwrap_err();
        assert_eq!(
            err,
            IdNumberError::CheckCharacter {
                expected: 'X',
                found: '1'
            }
        );
        assert!(!err.to_string().contains("1101051949"));
        assert_eq!(
            IdNumber::parse(&variant("1231002X", "02300020")),
            Err(IdNumberError::BirthDate)
        );
        assert_eq!(
            IdNumber::parse("11010519491231"),
            Err(IdNumberError::Length(14))
        );
        let born = chrono::NaiveDate::from_ymd_opt(1949, 12, 31).unwrap();
        assert_eq!(IdNumber::parse(EXAMPLE).unwrap().birth_date(), born);
        assert!(IdNumber::parse_on(EXAMPLE, born).is_ok());
        assert_eq!(
            IdNumber::parse_on(EXAMPLE, born.pred_opt().unwrap()),
            Err(IdNumberError::FutureBirthDate)
        );
        assert_eq!(
            IdNumber::parse("11010519491231A02X"),
            Err(IdNumberError::NotDigit(15))
        );
    }

    #[test]
    fn debug_output_is_masked() {
        let id = IdNumber::parse(EXAMPLE).unwrap();
        assert_eq!(format!("{id:?}"), "IdNumber(110105********002X)");
    }

    #[test]
    fn person_keys_depend_on_the_secret() {
        let id = IdNumber::parse(EXAMPLE).unwrap();
        let a = PersonKeyer::new(b"secret-a-0123456789".to_vec()).key(&id);
        let b = PersonKeyer::new(b"secret-b-0123456789".to_vec()).key(&id);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 64);
    }

    #[test]
    fn a_full_width_id_number_is_refused_at_its_first_full_width_character() {
        assert_eq!(
            IdNumber::parse("11010519491231002Ｘ").unwrap_err(),
            IdNumberError::NotAscii(18)
        );
    }

    #[test]
    fn a_resident_id_number_that_passes_the_uscc_checks_is_still_refused() {
        // A valid ID number (fake address code 990101) that also passes both USCC
        // checks, as about one in 341 does.
        let id = "990101198001014592";
        assert!(IdNumber::parse(id).is_ok());
        let err = Uscc::parse(id).unwrap_err();
        assert_eq!(err, UsccError::ResidentIdNumber);
        assert!(!err.to_string().contains(id));
    }

    #[test]
    fn codes_that_read_as_id_numbers_but_are_nobodys_are_usccs() {
        for (code, why) in [
            // Region 370919, organisation code 10010123: characters 7-14 read as
            // 1910-01-01 and the last character happens to be the ID check too.
            ("913709191001012394", "a market entity's code (91)"),
            // A public institution (12) in region 371082: characters 7-14 read as
            // 8210-01-01.
            ("123710821001011916", "a birth centuries ahead"),
        ] {
            assert!(IdNumber::parse(code).is_ok(), "{why}: reads as an ID");
            assert_eq!(Uscc::parse(code).unwrap().as_str(), code, "{why}");
        }
    }

    fn uscc_prefix() -> impl Strategy<Value = String> {
        proptest::collection::vec(0usize..31, 16).prop_map(|v| {
            v.into_iter()
                .map(|i| USCC_ALPHABET[i] as char)
                .collect::<String>()
        })
    }

    proptest! {
        #[test]
        fn completed_usccs_always_parse(prefix in uscc_prefix()) {
            let code = Uscc::complete(&prefix).unwrap();
            prop_assert_eq!(Uscc::parse(code.as_str()).unwrap(), code);
        }

        #[test]
        fn changing_one_uscc_character_is_detected(prefix in uscc_prefix(), pos in 0usize..18, shift in 1usize..31) {
            let code = Uscc::complete(&prefix).unwrap();
            let mut chars: Vec<char> = code.as_str().chars().collect();
            let v = uscc_value(chars[pos]).unwrap() as usize;
            chars[pos] = USCC_ALPHABET[(v + shift) % 31] as char;
            let changed: String = chars.into_iter().collect();
            prop_assert!(Uscc::parse(&changed).is_err());
        }

        #[test]
        fn changing_one_id_digit_is_detected(seq in 0u32..1000, pos in 0usize..17, shift in 1u8..10) {
            let mut digits = format!("99010119800101{seq:03}").into_bytes();
            let check = IdNumber::check_char(&digits);
            digits[pos] = b'0' + (digits[pos] - b'0' + shift) % 10;
            let mut changed = String::from_utf8(digits).unwrap();
            changed.push(check);
            prop_assert!(IdNumber::parse(&changed).is_err());
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = Uscc::parse(&s);
            let _ = IdNumber::parse(&s);
        }
    }
}
