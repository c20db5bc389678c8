//! Secrets. Passwords at rest are sealed with AES-256-GCM under a key the platform provides (a Spin
//! variable, from Key Vault in production): `v2:<key id>:` + base64(nonce ‖ ciphertext ‖ tag), the id of
//! the record holding it as associated data.
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

/// One key and its id (the first 8 hex digits of its SHA-256: names it in sealed values, reveals nothing).
#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn from_base64(key_b64: &str) -> Result<Self, SealError> {
        let key = base64::engine::general_purpose::STANDARD.decode(key_b64.trim()).map_err(|_| SealError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| SealError::BadKey)?;
        let id = sha256(&key)[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Key { id, cipher })
    }
}

/// Seals passwords under the current key; opens them under it or a previous one (while a rotation
/// re-seals them). A sealed value is bound to its record: copied onto another server or database it does
/// not open.
#[derive(Clone)]
pub struct Sealer {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(key {}, {} previous, <keys redacted>)", self.current.id, self.previous.len())
    }
}

/// `v1:` + base64(nonce ‖ ciphertext ‖ tag): the first format, without key id or record binding; still opened.
const V1: &str = "v1:";
/// `v2:<key id>:` + base64(nonce ‖ ciphertext ‖ tag), the record id as associated data.
const V2: &str = "v2:";
const NONCE_LEN: usize = 12;

fn split_nonce(b64: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok().filter(|r| r.len() > NONCE_LEN)?;
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    Some((nonce.to_vec(), ct.to_vec()))
}

impl Sealer {
    pub fn from_base64_key(key_b64: &str) -> Result<Self, SealError> {
        Self::with_previous(key_b64, &[])
    }

    /// The current key and the ones before it (opened, never sealed with), for a rotation.
    pub fn with_previous(key_b64: &str, previous: &[&str]) -> Result<Self, SealError> {
        let previous = previous.iter().map(|k| Key::from_base64(k)).collect::<Result<_, _>>()?;
        Ok(Sealer { current: Key::from_base64(key_b64)?, previous })
    }

    /// The current key's id, as sealed values name it.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for record `record` (the server's or database's id) under the current key, with a
    /// fresh 96-bit nonce from the operating system's random source.
    pub fn seal(&self, plaintext: &str, record: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source is available");
        let payload = aes_gcm::aead::Payload { msg: plaintext.as_bytes(), aad: record.as_bytes() };
        let ct = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend(ct);
        format!("{V2}{}:{}", self.current.id, base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens a value sealed for `record`: v2 under the key it names, v1 under any key known.
    pub fn open(&self, sealed: &str, record: &str) -> Result<String, SealError> {
        let keys = || std::iter::once(&self.current).chain(&self.previous);
        let pt = if let Some(rest) = sealed.strip_prefix(V2) {
            let (kid, b64) = rest.split_once(':').ok_or(SealError::CannotOpen)?;
            let key = keys().find(|k| k.id == kid).ok_or(SealError::CannotOpen)?;
            let (nonce, ct) = split_nonce(b64).ok_or(SealError::CannotOpen)?;
            let payload = aes_gcm::aead::Payload { msg: &ct, aad: record.as_bytes() };
            key.cipher.decrypt(Nonce::from_slice(&nonce), payload).map_err(|_| SealError::CannotOpen)?
        } else if let Some(b64) = sealed.strip_prefix(V1) {
            let (nonce, ct) = split_nonce(b64).ok_or(SealError::CannotOpen)?;
            keys()
                .find_map(|k| k.cipher.decrypt(Nonce::from_slice(&nonce), ct.as_slice()).ok())
                .ok_or(SealError::CannotOpen)?
        } else {
            return Err(SealError::CannotOpen);
        };
        String::from_utf8(pt).map_err(|_| SealError::CannotOpen)
    }

    /// Whether a sealed value should be sealed again: of the first format, or under a previous key.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        !sealed.starts_with(&format!("{V2}{}:", self.current.id))
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
        let sealed = s.seal("p@ss🔑word", "engine-1");
        assert!(!sealed.contains("p@ss"));
        assert!(sealed.starts_with(&format!("v2:{}:", s.key_id())), "{sealed}");
        assert_ne!(sealed, s.seal("p@ss🔑word", "engine-1"), "nonces must differ");
        assert_eq!(s.open(&sealed, "engine-1").unwrap(), "p@ss🔑word");
        assert_eq!(Sealer::from_base64_key(K2).unwrap().open(&sealed, "engine-1"), Err(SealError::CannotOpen));
        assert_eq!(s.open("v1:AAAA", "engine-1"), Err(SealError::CannotOpen));
        assert!(Sealer::from_base64_key("c2hvcnQ=").is_err());
        assert!(!format!("{s:?}").contains(K1));
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_own_record() {
        let s = Sealer::from_base64_key(K1).unwrap();
        let sealed = s.seal("secret", "database-a");
        assert_eq!(s.open(&sealed, "database-b"), Err(SealError::CannotOpen), "copied onto another record");
    }

    #[test]
    fn a_rotation_opens_old_values_and_says_which_to_seal_again() {
        let old = Sealer::from_base64_key(K1).unwrap();
        let before = old.seal("secret", "e1");
        // The first format: no key id, no record binding.
        let cipher = Aes256Gcm::new_from_slice(&base64::engine::general_purpose::STANDARD.decode(K1).unwrap()).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let mut raw = nonce.to_vec();
        raw.extend(cipher.encrypt(Nonce::from_slice(&nonce), b"legacy".as_slice()).unwrap());
        let v1 = format!("v1:{}", base64::engine::general_purpose::STANDARD.encode(raw));

        let rotated = Sealer::with_previous(K2, &[K1]).unwrap();
        assert_eq!(rotated.open(&before, "e1").unwrap(), "secret");
        assert_eq!(rotated.open(&v1, "e1").unwrap(), "legacy");
        assert!(rotated.needs_reseal(&before) && rotated.needs_reseal(&v1));
        let again = rotated.seal("secret", "e1");
        assert!(!rotated.needs_reseal(&again));
        assert_eq!(Sealer::from_base64_key(K2).unwrap().open(&again, "e1").unwrap(), "secret", "the old key can go");
        assert_ne!(old.key_id(), rotated.key_id());
    }
}
