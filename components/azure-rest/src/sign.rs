//! SharedKey (Blob, Queue) and SharedKeyLite (Table) signing. The canonical forms follow
//! "Authorize with Shared Key" in the Azure Storage REST reference.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Account, Credentials, Request, API_VERSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Blob,
    Queue,
    Table,
}

pub(crate) fn hmac_b64(key: &[u8], data: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub(crate) fn http_date(now: DateTime<Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Adds `x-ms-date`, `x-ms-version`, `Content-Length` and `Authorization` to `req`.
/// Call last: the signature covers the headers and the exact URL string.
pub(crate) fn authorize(account: &Account, service: Service, req: &mut Request, now: DateTime<Utc>) {
    let date = http_date(now);
    req.headers.push(("x-ms-date".into(), date.clone()));
    req.headers.push(("x-ms-version".into(), API_VERSION.into()));
    if req.header("content-length").is_none() {
        // Put Block rejects chunked uploads; every request states its length.
        req.headers.push(("Content-Length".into(), req.body.len().to_string()));
    }
    let auth = match &account.credentials {
        Credentials::Bearer { token } => format!("Bearer {token}"),
        Credentials::SharedKey { key } => {
            let (scheme, to_sign) = match service {
                Service::Table => ("SharedKeyLite", format!("{date}\n{}", canonical_resource(account, req, true))),
                _ => ("SharedKey", string_to_sign(account, req)),
            };
            format!("{scheme} {}:{}", account.name, hmac_b64(key, &to_sign))
        }
    };
    req.headers.push(("Authorization".into(), auth));
}

fn string_to_sign(account: &Account, req: &Request) -> String {
    let h = |n: &str| req.header(n).unwrap_or("").to_string();
    // Since 2015-02-21 a zero Content-Length is signed as the empty string.
    let len = match h("content-length").as_str() {
        "0" => String::new(),
        other => other.to_string(),
    };
    let mut ms: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}{}",
        req.method,
        h("content-encoding"),
        h("content-language"),
        len,
        h("content-md5"),
        h("content-type"),
        "", // Date: x-ms-date is used instead
        h("if-modified-since"),
        h("if-match"),
        h("if-none-match"),
        h("if-unmodified-since"),
        h("range"),
        canonical_headers,
        canonical_resource(account, req, false),
    )
}

/// `/{account}{path}` plus, for SharedKey, every query parameter; for SharedKeyLite (`lite`) only `comp`.
fn canonical_resource(account: &Account, req: &Request, lite: bool) -> String {
    let after_scheme = req.url.split_once("://").map(|(_, r)| r).unwrap_or(&req.url);
    let path_and_query = after_scheme.find('/').map(|i| &after_scheme[i..]).unwrap_or("/");
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut out = format!("/{}{}", account.name, path);
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k).to_ascii_lowercase(), decode(v))
        })
        .collect();
    params.sort();
    if lite {
        if let Some((_, v)) = params.iter().find(|(k, _)| k == "comp") {
            out.push_str(&format!("?comp={v}"));
        }
    } else {
        // Repeated names are joined with commas, as the reference requires.
        let mut merged: Vec<(String, Vec<String>)> = Vec::new();
        for (k, v) in params {
            match merged.last_mut() {
                Some((lk, vs)) if *lk == k => vs.push(v),
                _ => merged.push((k, vec![v])),
            }
        }
        for (k, vs) in merged {
            out.push_str(&format!("\n{k}:{}", vs.join(",")));
        }
    }
    out
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn dev() -> Account {
        Account::from_connection_string("UseDevelopmentStorage=true").unwrap()
    }

    #[test]
    fn shared_key_string_covers_headers_and_sorted_query() {
        let req = Request {
            method: "PUT".into(),
            url: "http://127.0.0.1:10000/devstoreaccount1/c/b?comp=block&blockid=QUFB".into(),
            headers: vec![
                ("x-ms-version".into(), "2021-08-06".into()),
                ("x-ms-date".into(), "D".into()),
                ("Content-Length".into(), "5".into()),
            ],
            body: b"hello".to_vec(),
        };
        let s = string_to_sign(&dev(), &req);
        assert_eq!(
            s,
            "PUT\n\n\n5\n\n\n\n\n\n\n\n\nx-ms-date:D\nx-ms-version:2021-08-06\n\
             /devstoreaccount1/devstoreaccount1/c/b\nblockid:QUFB\ncomp:block"
        );
    }

    #[test]
    fn zero_length_is_signed_empty_and_lite_keeps_only_comp() {
        let req = Request {
            method: "GET".into(),
            url: "http://h/devstoreaccount1/t()?$filter=a&comp=x".into(),
            headers: vec![("Content-Length".into(), "0".into())],
            body: vec![],
        };
        assert!(string_to_sign(&dev(), &req).starts_with("GET\n\n\n\n"));
        assert_eq!(canonical_resource(&dev(), &req, true), "/devstoreaccount1/devstoreaccount1/t()?comp=x");
    }

    #[test]
    fn signature_is_deterministic_and_key_dependent() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let mk = || Request {
            method: "GET".into(),
            url: "http://h/devstoreaccount1/q".into(),
            headers: vec![],
            body: vec![],
        };
        let (mut a, mut b) = (mk(), mk());
        authorize(&dev(), Service::Queue, &mut a, now);
        authorize(&dev(), Service::Queue, &mut b, now);
        assert_eq!(a.header("authorization"), b.header("authorization"));
        assert_eq!(a.header("x-ms-date"), Some("Sun, 22 Nov 2026 10:00:00 GMT"));
        let mut other = dev();
        other.credentials = Credentials::SharedKey { key: vec![1, 2, 3] };
        let mut c = mk();
        authorize(&other, Service::Queue, &mut c, now);
        assert_ne!(a.header("authorization"), c.header("authorization"));
        assert!(a.header("authorization").unwrap().starts_with("SharedKey devstoreaccount1:"));
    }

    #[test]
    fn known_vector_matches_reference_hmac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), base64.
        assert_eq!(
            hmac_b64(b"key", "The quick brown fox jumps over the lazy dog"),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }
}
