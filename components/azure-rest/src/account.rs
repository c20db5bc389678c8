use base64::Engine as _;

/// The well-known Azurite development account (public, documented by Microsoft).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How requests are authorized.
#[derive(Clone)]
pub enum Credentials {
    /// Account name + key: SharedKey signing and service SAS.
    SharedKey { key: Vec<u8> },
    /// An Entra ID access token for `https://storage.azure.com/` (managed or workload identity).
    Bearer { token: String },
}

impl std::fmt::Debug for Credentials {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::SharedKey { .. } => f.write_str("SharedKey(<redacted>)"),
            Credentials::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// A storage account: its name, how to reach each service, and how to sign.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub blob_endpoint: String,
    pub queue_endpoint: String,
    pub table_endpoint: String,
    pub credentials: Credentials,
    /// Emulator-style URLs carry the account name as the first path segment, and so does the
    /// canonicalized resource a second time.
    pub path_style: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionStringError {
    #[error("storage connection string: missing `{0}`")]
    Missing(&'static str),
    #[error("storage connection string: `AccountKey` is not valid base64")]
    BadKey,
    #[error("storage connection string: malformed segment (expected Key=Value pairs separated by `;`)")]
    Malformed,
}

impl Account {
    /// Parses an Azure Storage connection string, including `UseDevelopmentStorage=true` and explicit
    /// `BlobEndpoint=`/`QueueEndpoint=`/`TableEndpoint=` (how Azurite on other ports is reached).
    pub fn from_connection_string(s: &str) -> Result<Self, ConnectionStringError> {
        let mut kv = std::collections::HashMap::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or(ConnectionStringError::Malformed)?;
            kv.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        if kv.get("usedevelopmentstorage").map(|v| v.eq_ignore_ascii_case("true")) == Some(true) {
            let host = "http://127.0.0.1";
            return Ok(Account {
                name: DEV_ACCOUNT.into(),
                blob_endpoint: format!("{host}:10000/{DEV_ACCOUNT}"),
                queue_endpoint: format!("{host}:10001/{DEV_ACCOUNT}"),
                table_endpoint: format!("{host}:10002/{DEV_ACCOUNT}"),
                credentials: Credentials::SharedKey { key: decode_key(DEV_KEY)? },
                path_style: true,
            });
        }
        let name = kv.get("accountname").cloned().ok_or(ConnectionStringError::Missing("AccountName"))?;
        let key = kv.get("accountkey").ok_or(ConnectionStringError::Missing("AccountKey"))?;
        let protocol = kv.get("defaultendpointsprotocol").cloned().unwrap_or_else(|| "https".into());
        let suffix = kv.get("endpointsuffix").cloned().unwrap_or_else(|| "core.windows.net".into());
        let endpoint = |explicit: &str, service: &str| {
            kv.get(explicit)
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("{protocol}://{name}.{service}.{suffix}"))
        };
        let blob_endpoint = endpoint("blobendpoint", "blob");
        // Path-style when the endpoint carries the account as its path (emulators, private endpoints).
        let path_style = blob_endpoint.ends_with(&format!("/{name}"));
        Ok(Account {
            queue_endpoint: endpoint("queueendpoint", "queue"),
            table_endpoint: endpoint("tableendpoint", "table"),
            blob_endpoint,
            credentials: Credentials::SharedKey { key: decode_key(key)? },
            path_style,
            name,
        })
    }

    /// The local emulator: its well-known account on loopback endpoints only. What only tests and local
    /// runs may do (dev sign-in, a caller-chosen clock, plain-http links) checks this.
    pub fn is_local_emulator(&self) -> bool {
        // The URL's host as `http` parses it (userinfo, port and path apart), compared exactly.
        let loopback = |endpoint: &str| {
            let uri = endpoint.parse::<http::Uri>().ok();
            let host = uri.as_ref().filter(|u| u.scheme().is_some()).and_then(|u| u.host()).unwrap_or_default();
            ["127.0.0.1", "localhost", "[::1]"].contains(&host)
        };
        self.name == DEV_ACCOUNT
            && [&self.blob_endpoint, &self.queue_endpoint, &self.table_endpoint].into_iter().all(|e| loopback(e))
    }

    /// Whether a link to this account may be handed out: a SAS link is a bearer credential, so only over
    /// https, except to the local emulator.
    pub fn may_hand_out(&self, url: &str) -> bool {
        url.starts_with("https://") || self.is_local_emulator()
    }

    /// Connection string for an Azurite started on the given ports.
    pub fn azurite_connection_string(blob: u16, queue: u16, table: u16) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};\
             BlobEndpoint=http://127.0.0.1:{blob}/{DEV_ACCOUNT};\
             QueueEndpoint=http://127.0.0.1:{queue}/{DEV_ACCOUNT};\
             TableEndpoint=http://127.0.0.1:{table}/{DEV_ACCOUNT};"
        )
    }

    /// An account reached with an Entra ID token instead of a key.
    pub fn with_token(name: &str, token: String) -> Self {
        Account {
            name: name.into(),
            blob_endpoint: format!("https://{name}.blob.core.windows.net"),
            queue_endpoint: format!("https://{name}.queue.core.windows.net"),
            table_endpoint: format!("https://{name}.table.core.windows.net"),
            credentials: Credentials::Bearer { token },
            path_style: false,
        }
    }
}

fn decode_key(k: &str) -> Result<Vec<u8>, ConnectionStringError> {
    base64::engine::general_purpose::STANDARD.decode(k).map_err(|_| ConnectionStringError::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_uses_azurite_defaults() {
        let a = Account::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert!(a.is_local_emulator());
        assert!(Account::from_connection_string(&Account::azurite_connection_string(1, 2, 3))
            .unwrap()
            .is_local_emulator());
        let remote = Account::azurite_connection_string(1, 2, 3).replace("127.0.0.1:1", "10.0.0.7:1");
        assert!(!Account::from_connection_string(&remote).unwrap().is_local_emulator(), "not loopback");
        let sneaky = Account::azurite_connection_string(1, 2, 3).replace("127.0.0.1:2", "127.0.0.1.evil.com:2");
        assert!(!Account::from_connection_string(&sneaky).unwrap().is_local_emulator());
        let userinfo = Account::azurite_connection_string(1, 2, 3).replace("127.0.0.1:2", "127.0.0.1:2@evil.com");
        assert!(!Account::from_connection_string(&userinfo).unwrap().is_local_emulator(), "the host is evil.com");
        let v6 = Account::azurite_connection_string(1, 2, 3).replace("127.0.0.1", "[::1]");
        assert!(Account::from_connection_string(&v6).unwrap().is_local_emulator());
        assert!(!Account::with_token("devstoreaccount1", "t".into()).is_local_emulator());
        let plain = Account::from_connection_string(&remote).unwrap();
        assert!(!plain.may_hand_out("http://10.0.0.7:1/devstoreaccount1/c/b?sig=x"), "never in the clear");
        assert!(plain.may_hand_out("https://10.0.0.7:1/devstoreaccount1/c/b?sig=x"));
        assert!(a.may_hand_out("http://127.0.0.1:10000/devstoreaccount1/c/b?sig=x"), "the local emulator");
        assert_eq!(a.name, "devstoreaccount1");
        assert_eq!(a.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(a.table_endpoint, "http://127.0.0.1:10002/devstoreaccount1");
        assert!(a.path_style);
    }

    #[test]
    fn explicit_endpoints_and_cloud_defaults() {
        let a = Account::from_connection_string(&Account::azurite_connection_string(1, 2, 3)).unwrap();
        assert_eq!(a.queue_endpoint, "http://127.0.0.1:2/devstoreaccount1");
        assert!(a.path_style);
        let c = Account::from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=AAAA;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(c.blob_endpoint, "https://prod.blob.core.windows.net");
        assert!(!c.path_style);
    }

    #[test]
    fn bad_strings_name_the_problem_without_echoing_the_key() {
        let e = Account::from_connection_string("AccountName=x;AccountKey=!!notbase64").unwrap_err();
        assert_eq!(e, ConnectionStringError::BadKey);
        assert!(!e.to_string().contains("notbase64"));
        assert_eq!(
            Account::from_connection_string("AccountKey=AAAA").unwrap_err(),
            ConnectionStringError::Missing("AccountName")
        );
        let dbg = format!("{:?}", Account::from_connection_string("UseDevelopmentStorage=true").unwrap());
        assert!(!dbg.contains("Eby8"));
    }
}
