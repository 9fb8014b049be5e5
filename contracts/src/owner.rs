//! What a valid owner id is — the one definition intake, the HTTP API, the services and the CLI
//! all use ([`OwnerId::parse`]).
//!
//! An owner id is what identifies the person an order belongs to: on AWS a Cognito user's `sub`
//! (a UUID such as `4f1c…-…`), elsewhere often an email address. The rule:
//!
//! - 1 to [`OwnerId::MAX_BYTES`] (254) bytes of UTF-8: the longest email address a mail system
//!   forwards (RFC 5321 §4.5.3.1.3, a path of 256 octets with its angle brackets);
//! - made of Unicode letters and digits (`char::is_alphanumeric`: any script, so `josé`, `李雷`,
//!   `दीपा` are owners), the combining marks that follow a letter or digit (general category Mn
//!   or Mc: the virama of `कृष्ण`, the dot of `q̇`; never first, never after punctuation) and the ASCII characters an email address's local part may use unquoted
//!   (RFC 5322 §3.2.3 `atext`) plus `.` and `@`: `! # $ & ' * + - = ? ^ _ { | } ~ . @` —
//!   except `/`, `%` (so no percent-encoded `%2F` for a tool that decodes it) and the backtick.
//!   So no whitespace, no control or format characters (zero-width joiners, bidi overrides), no
//!   `/` or `\`;
//! - neither starting nor ending with `.` (so never `.` or `..`, nor anything a path-minded
//!   tool could read as a relative segment);
//! - in Unicode Normalization Form C. A non-NFC id (`e` + combining acute instead of `é`) is
//!   refused, not normalised: the owner on a task, on its events and in its keys is exactly the
//!   text the producer sent, and two spellings of one name can never become two owners.
//!
//! Case is significant (`Alice` and `alice` are two owners), as it is for a Cognito `sub`.
//! Look-alike characters from different scripts are different owners with different keys:
//! telling them apart on screen is a display matter, never an isolation one, because every key
//! is built from the exact bytes ([`crate::keys`]).

use std::fmt;

/// A valid owner id (see the module documentation for the rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(String);

/// Why a text is not an owner id. `Display` gives the sentence put in the rejection's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerIdError {
    Empty,
    /// Over [`OwnerId::MAX_BYTES`] bytes of UTF-8 (the length given).
    TooLong(usize),
    /// A character outside the rule (control, whitespace, `/`, `\`, a symbol, …).
    Character(char),
    /// Starts or ends with `.` (this covers `.` and `..`).
    DotAtEdge,
    /// Not in Unicode Normalization Form C.
    NotNfc,
}

impl fmt::Display for OwnerIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerIdError::Empty => write!(f, "owner is empty"),
            OwnerIdError::TooLong(n) => write!(f, "owner is {n} bytes, over {}", OwnerId::MAX_BYTES),
            OwnerIdError::Character(c) => write!(f, "owner has the character {:?} (U+{:04X}), outside letters, digits and {}", c, u32::from(*c), OwnerId::PUNCTUATION),
            OwnerIdError::DotAtEdge => write!(f, "owner starts or ends with '.'"),
            OwnerIdError::NotNfc => write!(f, "owner is not in Unicode Normalization Form C"),
        }
    }
}

impl std::error::Error for OwnerIdError {}

impl OwnerId {
    /// Longest owner id in bytes of UTF-8 (RFC 5321's longest forwardable address).
    pub const MAX_BYTES: usize = crate::limits::MAX_OWNER_BYTES;
    /// The ASCII punctuation an owner id may contain besides letters and digits.
    pub const PUNCTUATION: &'static str = "!#$&'*+-=?^_{|}~.@";

    /// Checks `text` against the rule; the error names the first thing wrong with it.
    pub fn parse(text: &str) -> Result<OwnerId, OwnerIdError> {
        if text.is_empty() {
            return Err(OwnerIdError::Empty);
        }
        if text.len() > Self::MAX_BYTES {
            return Err(OwnerIdError::TooLong(text.len()));
        }
        let mut after_base = false;
        for c in text.chars() {
            // A combining mark (a virama, a vowel sign, a dot above) belongs to the letter or
            // digit before it: `कृष्ण` is a name. On its own, or after punctuation, it is not.
            let ok = Self::allowed(c) || (after_base && Self::combining(c));
            if !ok {
                return Err(OwnerIdError::Character(c));
            }
            after_base = c.is_alphanumeric() || (after_base && Self::combining(c));
        }
        if text.starts_with('.') || text.ends_with('.') {
            return Err(OwnerIdError::DotAtEdge);
        }
        if !icu_normalizer::ComposingNormalizerBorrowed::new_nfc().is_normalized(text) {
            return Err(OwnerIdError::NotNfc);
        }
        Ok(OwnerId(text.to_string()))
    }

    fn allowed(c: char) -> bool {
        // is_alphanumeric: Unicode Alphabetic or Numeric; neither includes whitespace, controls
        // (Cc), format characters (Cf) or symbols.
        c.is_alphanumeric() || (c.is_ascii() && Self::PUNCTUATION.contains(c))
    }

    /// A nonspacing or spacing combining mark (Unicode general category Mn or Mc; enclosing
    /// marks, Me, are not taken).
    fn combining(c: char) -> bool {
        use icu_properties::props::GeneralCategory;
        matches!(
            icu_properties::CodePointMapData::<GeneralCategory>::new().get(c),
            GeneralCategory::NonspacingMark | GeneralCategory::SpacingMark
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for OwnerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognito_subs_emails_and_letters_of_any_script_are_owners() {
        for ok in [
            "alice",
            "4f1c2b9e-8a7d-4c3b-9e2f-1a2b3c4d5e6f",
            "alice+shop@example.com",
            "o'brien@example.ie",
            "first.last@sub.example.co.uk",
            "josé",
            "李雷",
            "дмитрий@пример.рф",
            "दीपा",
            "कृष्ण",
            "q\u{307}",
            "a_b-c~d!e#f$g&i*j=k?l^m{n|o}p",
            &"a".repeat(254),
        ] {
            assert_eq!(OwnerId::parse(ok).map(|o| o.as_str().to_string()), Ok(ok.to_string()), "{ok:?} is an owner");
        }
    }

    #[test]
    fn every_rule_has_its_error() {
        use OwnerIdError::*;
        let cases: &[(&str, OwnerIdError)] = &[
            ("", Empty),
            (&"a".repeat(255), TooLong(255)),
            (&"é".repeat(128), TooLong(256)),
            ("bob/x", Character('/')),
            ("../admin", Character('/')),
            ("..admin", DotAtEdge),
            (".", DotAtEdge),
            ("..", DotAtEdge),
            (".hidden", DotAtEdge),
            ("trailing.", DotAtEdge),
            ("back\\slash", Character('\\')),
            ("with space", Character(' ')),
            ("tab\there", Character('\t')),
            ("new\nline", Character('\n')),
            ("nul\0", Character('\0')),
            ("del\u{7f}", Character('\u{7f}')),
            ("zero\u{200b}width", Character('\u{200b}')),
            ("bidi\u{202e}override", Character('\u{202e}')),
            ("\u{94d}leading mark", Character('\u{94d}')),
            ("mark@\u{301}after punctuation", Character('\u{301}')),
            ("enclosing\u{20dd}", Character('\u{20dd}')),
            ("nbsp\u{a0}", Character('\u{a0}')),
            ("back`tick", Character('`')),
            ("colon:x", Character(':')),
            ("bob%2F..%2Fx", Character('%')),
            ("e\u{301}", NotNfc),
            ("angstrom\u{212b}", NotNfc),
        ];
        for (text, error) in cases {
            assert_eq!(OwnerId::parse(text), Err(error.clone()), "{text:?}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn non_nfc_text_is_refused_not_normalised() {
        // U+212B ANGSTROM SIGN is alphabetic and decomposes canonically to U+00C5: not NFC.
        assert_eq!(OwnerId::parse("\u{212b}"), Err(OwnerIdError::NotNfc));
        assert!(OwnerId::parse("\u{c5}").is_ok());
        // Hangul syllable precomposed is NFC; its jamo sequence is alphabetic but not NFC.
        assert!(OwnerId::parse("\u{d55c}").is_ok());
        assert_eq!(OwnerId::parse("\u{1112}\u{1161}\u{11ab}"), Err(OwnerIdError::NotNfc));
    }
}
