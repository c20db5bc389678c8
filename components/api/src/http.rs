//! The API's own request and response (the Spin entry point converts to and from Spin's), what a
//! handler is given ([`Cx`]) and what it answers ([`Reply`]), and parsing of bodies and query values.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Kind};
use crate::App;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
    Other,
}

impl Verb {
    pub fn parse(m: &str) -> Verb {
        match m.to_ascii_uppercase().as_str() {
            "GET" => Verb::Get,
            "POST" => Verb::Post,
            "PUT" => Verb::Put,
            "DELETE" => Verb::Delete,
            _ => Verb::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
            Verb::Other => "OTHER",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub client_ip: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json<T: Serialize>(status: u16, body: &T) -> Self {
        Response {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: serde_json::to_vec(body).expect("API bodies serialize"),
        }
    }

    pub fn error(e: &ApiError) -> Self {
        Response::json(e.status(), &e.body())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// What the audit row says the call was about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub name: String,
}

/// A handler's answer: the body (its status is the route's), the resource's ETag, and the audit target.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: serde_json::Value,
    pub etag: Option<String>,
    pub target: Target,
}

impl Reply {
    pub fn json<T: Serialize>(body: &T) -> Self {
        Reply { body: serde_json::to_value(body).expect("API bodies serialize"), etag: None, target: Target::default() }
    }

    /// The resource's version, for a later `If-Match`.
    pub fn etag(mut self, etag: Option<String>) -> Self {
        self.etag = etag;
        self
    }

    /// The resource the audit row names.
    pub fn about(mut self, id: &str, name: &str) -> Self {
        self.target = Target { id: id.to_string(), name: name.to_string() };
        self
    }
}

/// What a handler is given.
pub struct Cx<'a> {
    pub app: &'a App,
    /// The signed-in caller; `None` only on public routes.
    pub who: Option<&'a Principal>,
    /// Path parameters, in the order of the route's `{…}` segments.
    pub params: &'a [&'a str],
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    /// The version the client edited, when it says (optimistic concurrency across users).
    pub if_match: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl Cx<'_> {
    /// The first path parameter.
    pub fn id(&self) -> &str {
        self.params.first().copied().unwrap_or_default()
    }

    /// The caller's role; public routes see the least (a viewer's).
    pub fn role(&self) -> dilux_domain::user::Role {
        self.who.map(|p| p.role).unwrap_or(dilux_domain::user::Role::Viewer)
    }

    /// A permission beyond the route's, for what only some calls of it do (`what`: "deleting backups").
    pub fn require(&self, needed: dilux_domain::user::Permission, what: &str) -> ApiResult<()> {
        if self.role().can(needed) {
            Ok(())
        } else {
            let role = format!("{:?}", self.role()).to_lowercase();
            Err(ApiError::new(Kind::Forbidden, format!("your role ({role}) may not do this: {what} needs an admin")))
        }
    }

    pub fn who(&self) -> ApiResult<&Principal> {
        self.who.ok_or_else(|| ApiError::new(Kind::Unauthenticated, "sign in first"))
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(self.query, name)
    }

    pub fn body<T: DeserializeOwned>(&self) -> ApiResult<T> {
        parse(self.body)
    }

    /// An optional body: none (or JSON `null`) is the default.
    pub fn optional_body<T: DeserializeOwned + Default>(&self) -> ApiResult<T> {
        if self.body.iter().all(u8::is_ascii_whitespace) || self.body.trim_ascii() == b"null" {
            return Ok(T::default());
        }
        parse(self.body)
    }

    /// Refuses an edit based on a version older than `current` (412).
    pub fn check_if_match(&self, current: &str, what: &str) -> ApiResult<()> {
        match self.if_match {
            Some(m) if m != "*" && m != current => Err(ApiError::changed(what)),
            _ => Ok(()),
        }
    }
}

/// Parses a JSON body, naming the offending field on error.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(Kind::BodyTooLarge, format!("request body exceeds {MAX_BODY} bytes")));
    }
    if body.is_empty() {
        return Err(ApiError::new(Kind::InvalidBody, "a JSON body is required"));
    }
    // Every body is an object: serde would also take a struct from a JSON array, which the schema refuses.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::new(Kind::InvalidBody, "the body must be a JSON object"));
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let words = e.to_string();
        ApiError::new(
            Kind::InvalidBody,
            format!("the body is not JSON: {}", words.split(" at line").next().unwrap_or("")),
        )
    })?;
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // Unknown and missing fields carry their name in the message, not the path.
        let field = if path == "." || path.is_empty() {
            extract_backticked(&inner).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        let message = inner.split(" at line").next().unwrap_or(&inner).to_string();
        ApiError::field(&field, message)
    })
}

/// `16476.0` is an integer to JSON Schema (a number whose fraction is zero), not to serde: read it as one.
fn integral_floats_as_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // Exactly representable whole numbers only (|f| < 2^53).
            if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                *v = if f < 0.0 { Value::from(f as i64) } else { Value::from(f as u64) };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

fn extract_backticked(s: &str) -> Option<String> {
    let start = s.find('`')? + 1;
    let end = s[start..].find('`')? + start;
    Some(s[start..end].to_string())
}

pub fn query_params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// `%XX` escapes to their bytes (a path segment: `+` stays itself); what is not UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(hi), Some(lo)) =
            (bytes[i], bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query value; empty counts as absent.
pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// A typed parameter's value as given: `name=` is an empty value (refused by the typed readers), not an
/// absent one.
pub fn typed<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A query value that must be one of an enum's JSON names (`choices` lists them for the message).
pub fn enum_param<T: DeserializeOwned>(q: &[(String, String)], name: &str, choices: &str) -> ApiResult<Option<T>> {
    typed(q, name)
        .map(|s| {
            serde_json::from_value::<T>(serde_json::Value::String(s.into()))
                .map_err(|_| ApiError::field(name, format!("must be one of {choices}")))
        })
        .transpose()
}

pub fn engine_type_param(q: &[(String, String)]) -> ApiResult<Option<dilux_domain::EngineType>> {
    enum_param(q, "engine_type", "mysql, postgresql, sqlserver")
}

/// A `YYYY-MM-DD` query value.
/// A date `YYYY-MM-DD` from 1970 to 9999: within that, every date sum the handlers do (a few thousand days
/// either way) stays a valid date.
pub fn date_param(q: &[(String, String)], name: &str) -> ApiResult<Option<chrono::NaiveDate>> {
    typed(q, name)
        .map(|s| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|d| (1970..=9999).contains(&chrono::Datelike::year(d)) && s.len() == 10)
                .ok_or_else(|| ApiError::field(name, "must be a date, YYYY-MM-DD, from 1970 to 9999"))
        })
        .transpose()
}

pub fn bool_param(q: &[(String, String)], name: &str) -> ApiResult<Option<bool>> {
    match typed(q, name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::field(name, "must be true or false")),
    }
}

/// A whole number in `range`, or `default` when absent.
pub fn number_param<T>(
    q: &[(String, String)],
    name: &str,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> ApiResult<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match typed(q, name) {
        None => Ok(default),
        Some(s) => s.parse::<T>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            ApiError::field(name, format!("must be a number from {} to {}", range.start(), range.end()))
        }),
    }
}

/// The `cursor` of a newest-first page: the (PartitionKey, RowKey) of the last row already shown.
pub fn cursor_param(q: &[(String, String)]) -> ApiResult<Option<(String, String)>> {
    match typed(q, "cursor") {
        None => Ok(None),
        Some(c) => c.split_once('|').map(|(p, r)| Some((p.to_string(), r.to_string()))).ok_or_else(bad_cursor),
    }
}

pub fn bad_cursor() -> ApiError {
    ApiError::field("cursor", "is not a cursor this API returned")
}

/// The `cursor` that continues after the row with these keys.
pub fn next_cursor(pk: &str, rk: &str) -> String {
    format!("{pk}|{rk}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("email%3Aa%40b.c+%C3%B1%a%zz%"), "email:a@b.c+ñ%a%zz%");
        assert_eq!(percent_decode("%é%aé"), "%é%aé");
        let q = query_params("a=x%2Fy&b=1+2&c");
        assert_eq!(param(&q, "a"), Some("x/y"));
        assert_eq!(param(&q, "b"), Some("1 2"));
        assert_eq!(param(&q, "c"), None);
    }

    #[test]
    fn body_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            port: u16,
        }
        assert_eq!(parse::<B>(br#"{"port": "x"}"#).unwrap_err().field.as_deref(), Some("port"));
        assert_eq!(parse::<B>(br#"{"port": 1, "extra": 2}"#).unwrap_err().field.as_deref(), Some("extra"));
        assert_eq!(parse::<B>(b"{}").unwrap_err().field.as_deref(), Some("port"));
        assert_eq!(parse::<B>(b"").unwrap_err().code(), "invalid_body");
        assert_eq!(parse::<B>(&vec![b' '; MAX_BODY + 1]).unwrap_err().status(), 413);
    }
}
