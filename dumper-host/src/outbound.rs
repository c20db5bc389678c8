//! `allowed_outbound_hosts` enforcement, with Spin's semantics: a scheme is required, the port must
//! match (default port per scheme, or `*`), and `*.example.com` matches subdomains only.

use std::future::Future;
use std::time::Duration;

use wasmtime_wasi_http::{RequestOptions, WasiHttpHooks};

/// An `allowed_outbound_hosts` entry (or endpoint URL) that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHost(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: String,
    host: String,
    port: Option<String>,
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, InvalidHost> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| InvalidHost(format!("`{entry}` needs a scheme, like https://{entry}")))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h.to_string(), Some(p.to_string())),
            _ => (rest.to_string(), None),
        };
        Ok(AllowedHost { scheme: scheme.to_ascii_lowercase(), host: host.to_ascii_lowercase(), port })
    }

    /// False for an entry that matches every host (`*`).
    pub fn names_hosts(&self) -> bool {
        self.host != "*"
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let default_port = match scheme {
            "https" => 443,
            _ => 80,
        };
        let scheme_ok = self.scheme == "*" || self.scheme == scheme;
        let host = host.to_ascii_lowercase();
        let host_ok = self.host == "*"
            || self.host == host
            || self.host.strip_prefix("*.").is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
        let port_ok = match self.port.as_deref() {
            Some("*") => true,
            Some(p) => p.parse::<u16>().ok() == Some(port),
            None => port == default_port,
        };
        scheme_ok && host_ok && port_ok
    }
}

/// The per-instance outbound policy, plugged into wasmtime-wasi-http's send path.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    pub allowed: Vec<AllowedHost>,
    pub component: String,
}

impl OutboundPolicy {
    pub fn allows_uri(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or("");
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        self.allowed.iter().any(|a| a.allows(scheme, host, port))
    }
}

/// The longest a guest's outbound call may wait to connect, for the answer to begin, and between two pieces
/// of it (wasmtime's defaults are 10 minutes each). A guest may ask for less. The first byte gets a minute:
/// a connection test runs the database clients (their own connect timeout included) before it answers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
pub const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// A guest's request options with every timeout at most the host's.
pub fn capped(asked: Option<RequestOptions>) -> RequestOptions {
    let asked = asked.unwrap_or_default();
    let cap = |t: Option<Duration>, max: Duration| Some(t.map_or(max, |t| t.min(max)));
    RequestOptions {
        connect_timeout: cap(asked.connect_timeout, CONNECT_TIMEOUT),
        first_byte_timeout: cap(asked.first_byte_timeout, FIRST_BYTE_TIMEOUT),
        between_bytes_timeout: cap(asked.between_bytes_timeout, BETWEEN_BYTES_TIMEOUT),
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        _ = fut;
        if !self.allows_uri(request.uri()) {
            // Say which host and where to allow it: the usual cause is a missing manifest entry.
            let host = request.uri().authority().map(|a| a.as_str()).unwrap_or("");
            tracing::warn!(component = %self.component, uri = %host,
                "outbound request denied: add the host to the component's allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let options = Some(capped(options));
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

impl AllowedHost {
    /// The allow-list entry for an endpoint URL's origin (scheme, host, port; path ignored).
    pub fn origin_of(url: &str) -> Result<Self, InvalidHost> {
        let uri: http::Uri = url.parse().map_err(|e| InvalidHost(format!("`{url}` is not a URL: {e}")))?;
        let scheme = uri.scheme_str().ok_or_else(|| InvalidHost(format!("`{url}` needs a scheme")))?;
        let host = uri.host().ok_or_else(|| InvalidHost(format!("`{url}` needs a host")))?;
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(AllowedHost { scheme: scheme.into(), host: host.to_ascii_lowercase(), port: Some(port.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_wait_at_most_the_hosts_timeouts() {
        let none = capped(None);
        assert_eq!(none.connect_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(none.first_byte_timeout, Some(FIRST_BYTE_TIMEOUT));
        assert_eq!(none.between_bytes_timeout, Some(BETWEEN_BYTES_TIMEOUT));
        let asked = RequestOptions {
            connect_timeout: Some(Duration::from_secs(2)),
            first_byte_timeout: Some(Duration::from_secs(3600)),
            between_bytes_timeout: None,
        };
        let c = capped(Some(asked));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(2)), "less is kept");
        assert_eq!(c.first_byte_timeout, Some(FIRST_BYTE_TIMEOUT), "more is capped");
        assert_eq!(c.between_bytes_timeout, Some(BETWEEN_BYTES_TIMEOUT));
    }

    #[test]
    fn spin_semantics() {
        let a = AllowedHost::parse("http://127.0.0.1:*").unwrap();
        assert!(a.allows("http", "127.0.0.1", 10000));
        assert!(!a.allows("http", "localhost", 10000), "localhost is not 127.0.0.1");
        assert!(!a.allows("https", "127.0.0.1", 10000));
        let w = AllowedHost::parse("https://*.blob.core.windows.net").unwrap();
        assert!(w.allows("https", "acct.blob.core.windows.net", 443));
        assert!(!w.allows("https", "blob.core.windows.net", 443), "*.x does not match x");
        assert!(!w.allows("https", "acct.blob.core.windows.net", 8443));
        assert!(AllowedHost::parse("example.com").unwrap_err().0.contains("needs a scheme"));
        let p = OutboundPolicy { allowed: vec![a], component: "api".into() };
        assert!(p.allows_uri(&"http://127.0.0.1:1/x".parse().unwrap()));
        assert!(!p.allows_uri(&"http://10.0.0.1:1/x".parse().unwrap()));
    }
}
