//! Request parsing and the error contract: every error is `{"error": {"code", "message", "field"?}}`
//! with a status a client can act on.

use serde::de::DeserializeOwned;
use serde::Serialize;
use spin_sdk::http::Response;

use dilux_azure_spin::StoreError;
use dilux_domain::FieldError;

pub type ApiResult = Result<Response, ApiError>;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(404, "not_found", format!("{what} `{id}` does not exist"))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError { status: 400, code: "invalid_field", message: format!("{field}: {}", message.into()), field: Some(field.into()) }
    }

    pub fn config(message: String) -> Self {
        ApiError::new(500, "misconfigured", format!("the API is misconfigured: {message}"))
    }

    pub fn into_response(self) -> Response {
        let mut err = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(f) = self.field {
            err["field"] = f.into();
        }
        json(self.status, &serde_json::json!({ "error": err }))
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::field(&e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // Storage details stay in the log; the client learns what failed and that it may retry.
        eprintln!("api storage_error={e}");
        ApiError::new(503, "storage_unavailable", format!("Azure Storage could not complete the request ({e}); try again"))
    }
}

/// A JSON answer carrying the resource's ETag, for a later `If-Match`.
pub fn json_tagged<T: Serialize>(status: u16, body: &T, etag: Option<&str>) -> Response {
    let mut b = Response::builder();
    b.status(status).header("content-type", "application/json").header("cache-control", "no-store");
    if let Some(e) = etag {
        b.header("etag", e);
    }
    b.body(serde_json::to_vec(body).expect("API bodies serialize")).build()
}

/// The client's `If-Match` names the version it edited; a newer one means someone else changed the
/// resource since the client loaded it.
pub fn check_if_match(if_match: Option<&str>, current: &str, what: &str) -> Result<(), ApiError> {
    match if_match {
        Some(m) if m != "*" && m != current => Err(ApiError::new(412, "changed", format!("the {what} was changed by someone else since you loaded it; reload and try again"))),
        _ => Ok(()),
    }
}

pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(serde_json::to_vec(body).expect("API bodies serialize"))
        .build()
}

/// Parses a JSON body, naming the offending field on error.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(413, "body_too_large", format!("request body exceeds {MAX_BODY} bytes")));
    }
    if body.is_empty() {
        return Err(ApiError::new(400, "invalid_body", "a JSON body is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // Unknown and missing fields carry their name in the message, not the path.
        let field = if path == "." || path.is_empty() {
            extract_backticked(&inner).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        let message = inner.split(" at line").next().unwrap_or(&inner).to_string();
        ApiError { status: 400, code: "invalid_field", message: format!("{field}: {message}"), field: Some(field) }
    })
}

/// An optional body: none (or JSON `null`) is the default.
pub fn parse_optional<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    parse(body)
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
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A query value that must be one of an enum's JSON names (`choices` lists them for the message).
pub fn enum_param<T: DeserializeOwned>(q: &[(String, String)], name: &str, choices: &str) -> Result<Option<T>, ApiError> {
    param(q, name)
        .filter(|s| !s.is_empty())
        .map(|s| serde_json::from_value::<T>(serde_json::Value::String(s.into())).map_err(|_| ApiError::field(name, format!("must be one of {choices}"))))
        .transpose()
}

pub fn engine_type_param(q: &[(String, String)]) -> Result<Option<dilux_domain::EngineType>, ApiError> {
    enum_param(q, "engine_type", "mysql, postgresql, sqlserver")
}

/// A `YYYY-MM-DD` query value.
pub fn date_param(q: &[(String, String)], name: &str) -> Result<Option<chrono::NaiveDate>, ApiError> {
    param(q, name)
        .filter(|s| !s.is_empty())
        .map(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| ApiError::field(name, "must be a date, YYYY-MM-DD")))
        .transpose()
}

pub fn bool_param(q: &[(String, String)], name: &str) -> Result<Option<bool>, ApiError> {
    match param(q, name) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::field(name, "must be true or false")),
    }
}

/// The `cursor` of a newest-first page: the (PartitionKey, RowKey) of the last row already shown.
pub fn cursor_param(q: &[(String, String)]) -> Result<Option<(String, String)>, ApiError> {
    match param(q, "cursor").filter(|c| !c.is_empty()) {
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
