//! Client-side encryption of backups: a policy names the age X25519 recipients its backups are encrypted
//! to; the dumper-host encrypts the stored stream, and restores decrypt with an identity only the
//! dumper-host holds. Recipients are public keys: nothing secret is ever stored in our tables.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// The first bytes of every age file (format v1).
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Recipients a policy may name: each one adds a header line (about 100 bytes) to every backup.
pub const MAX_RECIPIENTS: usize = 20;

/// `{"recipients": ["age1…"]}`: every backup of the policy can be decrypted by any one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// age X25519 recipients (`age-keygen -y` prints one), 1 to 20. Include the dumper-host's own (the
    /// system status lists it): the product restores only what it can decrypt.
    #[schemars(schema_with = "recipients_schema")]
    pub recipients: Vec<String>,
}

/// An age X25519 recipient's shape: `age1` and 58 bech32 characters (the checksum is checked by
/// [`is_recipient`], which a pattern cannot).
pub const RECIPIENT: &str = "^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$";

/// 1 to 20 distinct recipients of [`RECIPIENT`]'s shape. `format: age-recipient` says the checksum counts too
/// (the API fuzzer generates values of that format with valid checksums).
fn recipients_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_RECIPIENTS,
        "uniqueItems": true,
        "items": { "type": "string", "pattern": RECIPIENT, "format": "age-recipient" },
    })
}

const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// BIP-173's checksum over the human-readable part and the data, as 5-bit values.
fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk = 1u32;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Whether `s` is an age X25519 recipient: lowercase bech32 with the `age` prefix, a valid checksum and
/// 32 bytes of key. A mistyped character fails the checksum, so a typo never makes backups nobody can open.
pub fn is_recipient(s: &str) -> bool {
    let Some(data) = s.strip_prefix("age1") else { return false };
    if data.len() != 58 {
        return false;
    }
    let values: Option<Vec<u8>> = data.bytes().map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8)).collect();
    let Some(values) = values else { return false };
    let hrp = b"age";
    let expanded = hrp.iter().map(|c| c >> 5).chain([0]).chain(hrp.iter().map(|c| c & 31));
    polymod(expanded.chain(values.iter().copied())) == 1
}

impl Encryption {
    /// `field` names the policy's field in the message (`encryption`).
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            let message = format!("name 1 to {MAX_RECIPIENTS} age recipients, or leave encryption out");
            return Err(FieldError::new(format!("{field}.recipients"), message));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            if !is_recipient(r) {
                let message = "is not an age X25519 recipient (`age1` and 58 characters, as `age-keygen -y` \
                               prints; check it was copied whole)";
                return Err(FieldError::new(format!("{field}.recipients[{i}]"), message));
            }
            if self.recipients[..i].contains(r) {
                return Err(FieldError::new(format!("{field}.recipients[{i}]"), "is listed twice"));
            }
        }
        Ok(())
    }
}

/// Whether stored bytes are an age file (needs the first 22 bytes to say yes).
pub fn is_encrypted(first: &[u8]) -> bool {
    first.starts_with(AGE_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `age-keygen` (its identity is thrown away).
    const REAL: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn recipients_are_checked_to_their_checksum() {
        assert!(is_recipient(REAL));
        let typo = REAL.replace("hjy", "hjz");
        assert!(!is_recipient(&typo), "one character changed fails the checksum");
        assert!(!is_recipient(&REAL.to_uppercase()));
        assert!(!is_recipient(&REAL[..61]));
        assert!(!is_recipient("AGE-SECRET-KEY-1QQQQ"));
        assert!(!is_recipient(&REAL.replace("age1", "age2")));
        // The API fuzzer's encoding of the key 00 01 … 1f (scripts/fuzz/dilux_hooks.py): the same rule.
        assert!(is_recipient("age1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0savhh7m"));
    }

    #[test]
    fn a_policy_names_one_to_twenty_distinct_recipients() {
        let ok = Encryption { recipients: vec![REAL.into()] };
        assert!(ok.validate("encryption").is_ok());
        let e = Encryption { recipients: vec![] }.validate("encryption").unwrap_err();
        assert_eq!(e.field, "encryption.recipients");
        let e = Encryption { recipients: vec![REAL.into(), "age1nope".into()] }.validate("encryption").unwrap_err();
        assert_eq!(e.field, "encryption.recipients[1]");
        let e = Encryption { recipients: vec![REAL.into(), REAL.into()] }.validate("encryption").unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("encryption.recipients[1]", "is listed twice"));
        assert!(serde_json::from_str::<Encryption>(r#"{"recipients":[],"identity":"x"}"#).is_err());
    }

    #[test]
    fn age_files_are_told_by_their_first_bytes() {
        assert!(is_encrypted(b"age-encryption.org/v1\n-> X25519 abc\n"));
        assert!(!is_encrypted(&[0x28, 0xb5, 0x2f, 0xfd]));
        assert!(!is_encrypted(b"age-encryption.org/v2\n"));
    }
}
