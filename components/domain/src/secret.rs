//! Secrets. Passwords at rest are sealed with AES-256-GCM under a key the platform provides (a Spin
//! variable, from Key Vault in production); a sealed value is `v1:` + base64(nonce ‖ ciphertext ‖ tag).
//! Shared tokens are [`SharedToken`]s: at least [`MIN_TOKEN_LEN`] characters, compared by digest.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

/// Compares two secrets (tokens, signatures) in time that depends only on their lengths, so a caller
/// cannot learn a secret byte by byte from how fast a guess is refused.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The shortest shared token accepted (`tick_token`, `dumper_token`): 32 characters of a random source.
pub const MIN_TOKEN_LEN: usize = 32;

/// A shared secret a caller presents as `Authorization: Bearer …`. Only its SHA-256 is kept; presented
/// values are hashed and compared in constant time, so neither the bytes nor the length of the token
/// show in how fast a guess is refused.
#[derive(Clone)]
pub struct SharedToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedToken(<redacted>)")
    }
}

fn sha256(v: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(v).into()
}

impl SharedToken {
    /// The value of variable `name`, refused when shorter than [`MIN_TOKEN_LEN`].
    pub fn new(name: &str, value: &str) -> Result<Self, crate::config::ConfigError> {
        if value.chars().count() < MIN_TOKEN_LEN {
            return Err(crate::config::ConfigError::new(
                name,
                format!("is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -base64 32`"),
            ));
        }
        Ok(SharedToken { digest: sha256(value.as_bytes()) })
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let presented = authorization.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
        constant_time_eq(&sha256(presented.as_bytes()), &self.digest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("seal_key must be 32 bytes, base64-encoded (generate one with `openssl rand -base64 32`)")]
    BadKey,
    #[error("a stored secret could not be opened: it was sealed under another seal_key, or is corrupt")]
    CannotOpen,
}

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key redacted>)")
    }
}

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

impl Sealer {
    pub fn from_base64_key(key_b64: &str) -> Result<Self, SealError> {
        let key = base64::engine::general_purpose::STANDARD.decode(key_b64.trim()).map_err(|_| SealError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| SealError::BadKey)?;
        Ok(Sealer { cipher })
    }

    pub fn seal(&self, plaintext: &str) -> String {
        // 96 random bits from the platform's CSPRNG (uuid v4 draws from getrandom on every target).
        let random = uuid::Uuid::new_v4();
        let nonce_bytes: [u8; NONCE_LEN] = random.as_bytes()[..NONCE_LEN].try_into().expect("16 >= 12");
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend(ct);
        format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or(SealError::CannotOpen)?;
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let pt = self.cipher.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| SealError::CannotOpen)?;
        String::from_utf8(pt).map_err(|_| SealError::CannotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn shared_tokens_are_long_and_match_only_themselves() {
        let t = "0123456789abcdef0123456789abcdef";
        let short = SharedToken::new("tick_token", &t[..31]).unwrap_err();
        assert_eq!(short.variable, "tick_token");
        assert!(short.to_string().contains("shorter than 32 characters"), "{short}");
        let token = SharedToken::new("tick_token", t).unwrap();
        assert!(token.admits(Some(&format!("Bearer {t}"))));
        for wrong in [None, Some(t), Some("Bearer "), Some("Bearer 0123456789abcdef0123456789abcdeF")] {
            assert!(!token.admits(wrong), "{wrong:?}");
        }
        assert!(!format!("{token:?}").contains("0123"), "never printed");
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"tick-token", b"tick-token"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"tick-token", b"tick-tokem"));
        assert!(!constant_time_eq(b"tick-token", b"tick-token-longer"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn seals_and_opens_without_leaking() {
        let s = Sealer::from_base64_key(K1).unwrap();
        let sealed = s.seal("p@ss🔑word");
        assert!(!sealed.contains("p@ss"));
        assert_ne!(sealed, s.seal("p@ss🔑word"), "nonces must differ");
        assert_eq!(s.open(&sealed).unwrap(), "p@ss🔑word");
        assert_eq!(Sealer::from_base64_key(K2).unwrap().open(&sealed), Err(SealError::CannotOpen));
        assert_eq!(s.open("v1:AAAA"), Err(SealError::CannotOpen));
        assert!(Sealer::from_base64_key("c2hvcnQ=").is_err());
        assert!(!format!("{s:?}").contains(K1));
    }
}
