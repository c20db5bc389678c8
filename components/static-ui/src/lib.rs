//! Serves the UI's files, mounted at `/` by the manifest's `files`, with an SPA fallback to
//! `index.html` so client-side routes survive a reload. The usual prebuilt Spin file server cannot be
//! fetched here, and this one is small.

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Ok(Response::builder().status(405).header("allow", "GET, HEAD").body("method not allowed").build());
    }
    let path = req.path().split('?').next().unwrap_or("/");
    let Some(rel) = safe_relative(path) else {
        return Ok(Response::new(400, "bad path"));
    };
    let candidate = if rel.is_empty() { "index.html".to_string() } else { rel };
    let (file, body) = match std::fs::read(format!("/{candidate}")) {
        Ok(b) => (candidate, b),
        // Paths without an extension are client-side routes.
        Err(_) if !candidate.rsplit('/').next().unwrap_or("").contains('.') => match std::fs::read("/index.html") {
            Ok(b) => ("index.html".to_string(), b),
            Err(_) => return Ok(Response::new(404, "not found")),
        },
        Err(_) => return Ok(Response::new(404, "not found")),
    };
    let cache = if file == "index.html" { "no-cache" } else { "public, max-age=3600" };
    let authority = spin_sdk::variables::get("entra_authority").unwrap_or_default();
    Ok(Response::builder()
        .status(200)
        .header("content-type", content_type(&file))
        .header("cache-control", cache)
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", content_security_policy(&authority))
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .body(body)
        .build())
}

/// Scripts, styles and Wasm from this origin only (the app's own style attributes aside), calls to this
/// origin and the sign-in authority, never framed: an injected script or a clickjacking page gets nothing.
fn content_security_policy(authority: &str) -> String {
    let origin = origin_of(authority).map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; style-src-attr 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'{origin}; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'self'; object-src 'none'"
    )
}

/// `scheme://host[:port]` of a URL, when it is one without anything a policy could misread.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    let clean = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    (matches!(scheme, "https" | "http") && clean(host)).then(|| format!("{scheme}://{host}"))
}

/// The path without its leading `/`, or `None` if it tries to leave the mount.
fn safe_relative(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\\') || s.contains('\0') => return None,
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_only_this_origin_and_the_authority() {
        let p = content_security_policy("https://login.microsoftonline.com/");
        assert!(p.contains("connect-src 'self' https://login.microsoftonline.com;"), "{p}");
        assert!(p.contains("frame-ancestors 'none'") && p.contains("script-src 'self' 'wasm-unsafe-eval';"), "{p}");
        let sneaky = content_security_policy("https://x.example.com; script-src *");
        assert!(sneaky.contains("connect-src 'self';"), "{sneaky}");
        assert_eq!(origin_of("http://127.0.0.1:4567/tenant"), Some("http://127.0.0.1:4567".into()));
        assert_eq!(origin_of(""), None);
    }
}
