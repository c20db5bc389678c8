//! Sends one rendered notification for the API's notify tick, which has no sockets of its own: an
//! HTTPS POST (webhook, Slack, Teams), an email over SMTP, or a run of a notifier plug-in. The address is
//! resolved once and checked before anything is sent — never the cloud's metadata service or a link-local
//! address, even when a name resolves there — and the request goes to exactly that address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dilux_domain::notify::{clip, is_forbidden_ip, Outgoing, SendResult, SmtpSecurity};

use crate::host::notifier::Notifiers;

/// A destination has this long to take a notification.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// What is kept of a destination's answer.
const MAX_ANSWER: usize = 300;

/// Sends `o`; a plug-in's notification runs that plug-in from `plugins`.
pub async fn send(o: &Outgoing, plugins: Option<&Notifiers>) -> SendResult {
    let started = Instant::now();
    let (ok, status, message) = match (o, plugins) {
        (Outgoing::Http { url, headers, body }, _) => http(url, headers, body).await,
        (Outgoing::Smtp { .. }, _) => smtp(o).await,
        (Outgoing::Plugin { plugin, settings, delivery_id, event }, Some(plugins)) => {
            let (ok, status, said) = plugins.notify(plugin, event, delivery_id, settings).await;
            (ok, status, short(&said))
        }
        (Outgoing::Plugin { .. }, None) => {
            (false, None, "this dumper-host runs no notifier plug-ins: start it with --notifiers notifiers.toml".into())
        }
    };
    let result = SendResult { ok, status, message, duration_ms: started.elapsed().as_millis() as u64 };
    tracing::info!(target_host = %o.target(), ok = result.ok, status = ?result.status, ms = result.duration_ms,
        "notification sent");
    result
}

/// The addresses of `host:port`, refused when any of them is one a notification must not reach.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::time::timeout(SEND_TIMEOUT, tokio::net::lookup_host((bare, port)))
        .await
        .map_err(|_| format!("{host} did not resolve in time"))?
        .map_err(|e| format!("{host} does not resolve ({e}); check the name"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} does not resolve; check the name"));
    }
    if let Some(bad) = addrs.iter().find(|a| is_forbidden_ip(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, a link-local or unspecified address: notifications are never sent there",
            bad.ip()
        ));
    }
    Ok(addrs)
}

/// At most `MAX_ANSWER` characters of `s`, then `…`.
fn short(s: &str) -> String {
    clip(s.trim(), MAX_ANSWER + 1)
}

async fn http(url: &str, headers: &[(String, String)], body: &str) -> (bool, Option<u16>, String) {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => return (false, None, "the channel's URL is not an http(s) URL; edit the channel".into()),
    };
    let (Some(host), Some(port)) = (parsed.host_str().map(str::to_string), parsed.port_or_known_default()) else {
        return (false, None, "the channel's URL has no host; edit the channel".into());
    };
    let addrs = match resolve(&host, port).await {
        Ok(a) => a,
        Err(e) => return (false, None, e),
    };
    // Pinned to the checked addresses, and no redirects: neither can lead the request somewhere else.
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(host.trim_start_matches('[').trim_end_matches(']'), &addrs)
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => return (false, None, format!("could not prepare the request: {e}")),
    };
    let mut req = client.post(parsed).body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let message = if status.is_success() {
                if text.trim().is_empty() {
                    status.to_string()
                } else {
                    short(&text)
                }
            } else if status.is_redirection() {
                format!("{status}: the endpoint redirects; give the channel the final URL")
            } else {
                format!("{status}: {}", short(&text))
            };
            (status.is_success(), Some(status.as_u16()), message)
        }
        Err(e) if e.is_timeout() => (false, None, format!("{host} did not answer in {} s", SEND_TIMEOUT.as_secs())),
        Err(e) => (false, None, format!("could not reach {host}: {}", e.without_url())),
    }
}

async fn smtp(o: &Outgoing) -> (bool, Option<u16>, String) {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let Outgoing::Smtp { host, port, security, username, password, from, to, subject, text } = o else {
        unreachable!("smtp() is given email");
    };
    // lettre connects to the checked address, not to whatever the name resolves to next; TLS still
    // verifies the certificate against the name.
    let addr = match resolve(host, *port).await {
        Ok(a) => a[0].ip().to_string(),
        Err(e) => return (false, None, e),
    };
    let mut message = Message::builder().subject(subject.as_str()).header(ContentType::TEXT_PLAIN);
    match from.parse() {
        Ok(f) => message = message.from(f),
        Err(e) => return (false, None, format!("the sender address {from} is not valid: {e}")),
    }
    for t in to {
        match t.parse() {
            Ok(a) => message = message.to(a),
            Err(e) => return (false, None, format!("the address {t} is not valid: {e}")),
        }
    }
    let email = match message.body(text.clone()) {
        Ok(m) => m,
        Err(e) => return (false, None, format!("could not build the email: {e}")),
    };
    let tls = || TlsParameters::new(host.clone()).map_err(|e| format!("TLS to {host}: {e}"));
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr).port(*port).timeout(Some(SEND_TIMEOUT));
    builder = match security {
        SmtpSecurity::Starttls => match tls() {
            Ok(p) => builder.tls(Tls::Required(p)),
            Err(e) => return (false, None, e),
        },
        SmtpSecurity::Tls => match tls() {
            Ok(p) => builder.tls(Tls::Wrapper(p)),
            Err(e) => return (false, None, e),
        },
        SmtpSecurity::None => builder.tls(Tls::None),
    };
    if let (Some(u), Some(p)) = (username, password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    match builder.build().send(email).await {
        Ok(r) => {
            let code = r.code().to_string().parse().ok();
            let words: Vec<&str> = r.message().collect();
            (r.is_positive(), code, short(&format!("{} {}", r.code(), words.join(" "))))
        }
        Err(e) => {
            let code = e.status().and_then(|c| c.to_string().parse().ok());
            (false, code, short(&format!("{host}:{port}: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_metadata_service_is_never_reached() {
        let e = super::resolve("169.254.169.254", 80).await.unwrap_err();
        assert!(e.contains("link-local"), "{e}");
        assert!(super::resolve("127.0.0.1", 80).await.is_ok());
    }
}
