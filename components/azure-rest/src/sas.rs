//! Service SAS for a single blob: short-lived, read-only links for downloads.

use chrono::{DateTime, Duration, Utc};

use crate::{sign::hmac_b64, Account, AzureError, Credentials};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SasPermissions {
    Read,
}

impl SasPermissions {
    fn as_str(self) -> &'static str {
        match self {
            SasPermissions::Read => "r",
        }
    }
}

/// A signed URL for one blob.
#[derive(Debug, Clone)]
pub struct BlobSas {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

const SAS_VERSION: &str = "2020-12-06";

impl BlobSas {
    /// Builds a service SAS URL for `container/blob`, valid from a minute ago (clock skew) for `ttl`.
    pub fn new(
        account: &Account,
        container: &str,
        blob: &str,
        permissions: SasPermissions,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Self, AzureError> {
        let Credentials::SharedKey { key } = &account.credentials else {
            // A user-delegation SAS needs a token exchange; only key-signed SAS is built here.
            return Err(AzureError::InvalidArgument {
                field: "credentials",
                detail: "a service SAS needs an account key".into(),
            });
        };
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let start = fmt(now - Duration::minutes(1));
        let expires_at = now + ttl;
        let expiry = fmt(expires_at);
        let perms = permissions.as_str();
        let resource = format!("/blob/{}/{}/{}", account.name, container, blob);
        // Field order for versions 2020-12-06 and later.
        let to_sign =
            [perms, &start, &expiry, &resource, "", "", "https,http", SAS_VERSION, "b", "", "", "", "", "", "", ""]
                .join("\n");
        let sig = hmac_b64(key, &to_sign);
        let q = |s: &str| percent_encoding::utf8_percent_encode(s, crate::blob::QUERY).to_string();
        let url = format!(
            "{}/{}/{}?sv={SAS_VERSION}&spr=https,http&st={}&se={}&sr=b&sp={perms}&sig={}",
            account.blob_endpoint,
            container,
            crate::blob::encode_path(blob),
            q(&start),
            q(&expiry),
            q(&sig)
        );
        Ok(BlobSas { url, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sas_is_read_only_and_expires() {
        let a = Account::from_connection_string("UseDevelopmentStorage=true").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let s = BlobSas::new(&a, "backups", "postgresql/x/1.sql.gz", SasPermissions::Read, now, Duration::minutes(15))
            .unwrap();
        assert!(s.url.starts_with("http://127.0.0.1:10000/devstoreaccount1/backups/postgresql/x/1.sql.gz?sv="));
        assert!(s.url.contains("&sp=r&"));
        assert!(s.url.contains("se=2026-01-02T03%3A19%3A05Z"));
        assert!(!s.url.contains("Eby8"));
        let bearer = Account::with_token("acct", "t".into());
        assert!(BlobSas::new(&bearer, "c", "b", SasPermissions::Read, now, Duration::minutes(1)).is_err());
    }
}
