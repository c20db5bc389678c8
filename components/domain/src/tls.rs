//! How Dilux talks TLS to a database server: a mode per server (PostgreSQL's `sslmode` names) and an
//! optional CA bundle. Azure Database for PostgreSQL and MySQL refuse unencrypted connections by default,
//! and a password crossing a network in the clear is one an eavesdropper has.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// A server's TLS setting as stored and accepted by the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// `require` for a server on another machine, `prefer` for one on this machine's loopback.
    #[default]
    Auto,
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it, without checking its certificate.
    Prefer,
    /// Always encrypt; the certificate is not checked (safe from eavesdroppers, not from an impostor).
    Require,
    /// Always encrypt, and the certificate must chain to the CA bundle (or the system's) and name the host.
    VerifyFull,
}

impl TlsMode {
    /// The mode a connection to `host` uses: never `Auto`.
    pub fn effective(self, host: &str) -> TlsMode {
        match self {
            TlsMode::Auto if is_loopback_host(host) => TlsMode::Prefer,
            TlsMode::Auto => TlsMode::Require,
            m => m,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Auto => "auto",
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// How much a connection in this (effective) mode protects the password: higher is safer.
    fn strength(self) -> u8 {
        match self {
            TlsMode::Auto | TlsMode::Disable => 0,
            TlsMode::Prefer => 1,
            TlsMode::Require => 2,
            TlsMode::VerifyFull => 3,
        }
    }
}

/// What one connection uses: an effective mode and the CA bundle (PEM) to check certificates against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub mode: TlsMode,
    #[serde(default)]
    pub ca: Option<String>,
}

impl Tls {
    /// The connection settings for `host` of a server stored with `mode` and `ca`.
    pub fn for_host(mode: TlsMode, ca: Option<&str>, host: &str) -> Tls {
        Tls { mode: mode.effective(host), ca: ca.map(str::to_string) }
    }

    /// Whether `to` could hand the password to someone `self` would not: a weaker mode, or another CA
    /// while certificates are checked (a CA of the caller's choosing vouches for any impostor). Checking
    /// where nothing was checked is never weaker, whatever the CA.
    pub fn weakened_by(&self, to: &Tls) -> bool {
        let checked = |t: &Tls| t.mode == TlsMode::VerifyFull;
        to.mode.strength() < self.mode.strength() || (checked(self) && checked(to) && to.ca != self.ca)
    }
}

/// The most characters a CA bundle may hold: Azure's roots together are about 5 KiB.
pub const MAX_CA_BYTES: usize = 32 * 1024;

/// A CA bundle is one or more PEM certificates and nothing else (no private key by mistake).
pub fn validate_ca(field: &str, pem: &str) -> Result<(), FieldError> {
    if pem.chars().count() > MAX_CA_BYTES {
        return Err(FieldError::new(field, format!("is longer than {MAX_CA_BYTES} bytes")));
    }
    let begins = pem.matches("-----BEGIN CERTIFICATE-----").count();
    let ends = pem.matches("-----END CERTIFICATE-----").count();
    if begins == 0 || begins != ends {
        return Err(FieldError::new(field, "must be PEM certificates (-----BEGIN CERTIFICATE----- … -----END …)"));
    }
    if pem.contains("PRIVATE KEY") {
        return Err(FieldError::new(field, "holds a private key; give only the CA's certificates"));
    }
    if pem.lines().any(|l| l.starts_with("-----BEGIN ") && l != "-----BEGIN CERTIFICATE-----") {
        return Err(FieldError::new(field, "holds something other than certificates"));
    }
    Ok(())
}

/// A host on this machine's loopback (`localhost`, `127.0.0.0/8`, `::1`), where nobody else can listen in.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    // Not `*.localhost`: nothing guarantees the resolver keeps those on this machine.
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn auto_requires_tls_off_this_machine() {
        assert_eq!(TlsMode::Auto.effective("db.postgres.database.azure.com"), TlsMode::Require);
        assert_eq!(TlsMode::Auto.effective("10.0.0.4"), TlsMode::Require);
        for local in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert_eq!(TlsMode::Auto.effective(local), TlsMode::Prefer, "{local}");
        }
        assert_eq!(TlsMode::Disable.effective("db.example.com"), TlsMode::Disable);
        assert_eq!(TlsMode::VerifyFull.effective("localhost"), TlsMode::VerifyFull);
    }

    #[test]
    fn weaker_modes_and_new_cas_are_weakening() {
        let t = |mode, ca: Option<&str>| Tls { mode, ca: ca.map(str::to_string) };
        let verified = t(TlsMode::VerifyFull, Some(CERT));
        assert!(verified.weakened_by(&t(TlsMode::Require, Some(CERT))));
        assert!(verified.weakened_by(&t(TlsMode::VerifyFull, None)), "the system's CAs instead of the given one");
        assert!(verified.weakened_by(&t(TlsMode::VerifyFull, Some("other"))));
        assert!(!verified.weakened_by(&verified.clone()));
        assert!(!t(TlsMode::Require, None).weakened_by(&t(TlsMode::Require, Some(CERT))), "not checked either way");
        assert!(!t(TlsMode::Prefer, None).weakened_by(&t(TlsMode::Require, None)));
        assert!(!t(TlsMode::Require, None).weakened_by(&verified), "checking is stronger whatever the CA");
        assert!(t(TlsMode::Prefer, None).weakened_by(&t(TlsMode::Disable, None)));
    }

    #[test]
    fn a_ca_bundle_is_certificates_only() {
        assert!(validate_ca("tls_ca", CERT).is_ok());
        assert!(validate_ca("tls_ca", &CERT.repeat(3)).is_ok());
        let e = validate_ca("tls_ca", "hello").unwrap_err();
        assert_eq!(e.field, "tls_ca");
        let key = format!("{CERT}-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n");
        assert!(validate_ca("tls_ca", &key).unwrap_err().message.contains("private key"));
        assert!(validate_ca("tls_ca", &CERT.repeat(1000)).is_err());
    }
}
