//! Table service over JSON (OData). Entities are JSON objects; `PartitionKey` and `RowKey` are fields.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::sign::{authorize, Service};
use crate::{Account, AzureError, Request, Response};

pub type Entity = Map<String, Value>;

fn build(
    a: &Account,
    now: DateTime<Utc>,
    method: &str,
    url: String,
    mut headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Request {
    headers.push(("Accept".into(), "application/json;odata=minimalmetadata".into()));
    headers.push(("DataServiceVersion".into(), "3.0;NetFx".into()));
    headers.push(("MaxDataServiceVersion".into(), "3.0;NetFx".into()));
    if !body.is_empty() {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    let mut r = Request { method: method.into(), url, headers, body };
    authorize(a, Service::Table, &mut r, now);
    r
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::blob::QUERY).to_string()
}

/// `Table(PartitionKey='..',RowKey='..')`, quotes doubled as OData requires, then URL-encoded.
fn entity_url(a: &Account, table: &str, pk: &str, rk: &str) -> String {
    let lit = |s: &str| enc(&s.replace('\'', "''"));
    format!("{}/{}(PartitionKey='{}',RowKey='{}')", a.table_endpoint, table, lit(pk), lit(rk))
}

/// An OData string literal for `$filter`: `'it''s'`.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Stores an Int64 the way Table storage requires: a string plus its type annotation.
pub fn set_i64(e: &mut Entity, key: &str, v: i64) {
    e.insert(key.into(), Value::String(v.to_string()));
    e.insert(format!("{key}@odata.type"), Value::String("Edm.Int64".into()));
}

/// Reads an Int64 (string form) or an Int32 (number form).
pub fn get_i64(e: &Entity, key: &str) -> Option<i64> {
    match e.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

pub fn create_table(a: &Account, now: DateTime<Utc>, table: &str) -> Request {
    let body = serde_json::json!({ "TableName": table }).to_string().into_bytes();
    build(
        a,
        now,
        "POST",
        format!("{}/Tables", a.table_endpoint),
        vec![("Prefer".into(), "return-no-content".into())],
        body,
    )
}

pub fn parse_create_table(r: Response) -> Result<(), AzureError> {
    if r.status == 409 {
        return Ok(());
    }
    r.check("create table").map(|_| ())
}

/// Inserts a new entity; 409 if the keys exist.
pub fn insert_entity(a: &Account, now: DateTime<Utc>, table: &str, entity: &Entity) -> Request {
    let body = Value::Object(entity.clone()).to_string().into_bytes();
    build(
        a,
        now,
        "POST",
        format!("{}/{}", a.table_endpoint, table),
        vec![("Prefer".into(), "return-no-content".into())],
        body,
    )
}

/// Insert-or-replace (no precondition).
pub fn upsert_entity(a: &Account, now: DateTime<Utc>, table: &str, entity: &Entity) -> Result<Request, AzureError> {
    let (pk, rk) = keys(entity)?;
    let body = Value::Object(entity.clone()).to_string().into_bytes();
    Ok(build(a, now, "PUT", entity_url(a, table, &pk, &rk), vec![], body))
}

/// Merges fields into an existing entity. `etag: None` means unconditional (`If-Match: *`);
/// `Some(etag)` fails with 412 if somebody else changed it since it was read.
pub fn merge_entity(
    a: &Account,
    now: DateTime<Utc>,
    table: &str,
    entity: &Entity,
    etag: Option<&str>,
) -> Result<Request, AzureError> {
    let (pk, rk) = keys(entity)?;
    let body = Value::Object(entity.clone()).to_string().into_bytes();
    let headers = vec![("If-Match".into(), etag.unwrap_or("*").into())];
    Ok(build(a, now, "MERGE", entity_url(a, table, &pk, &rk), headers, body))
}

/// Replaces an existing entity, with the same precondition semantics as [`merge_entity`].
pub fn update_entity(
    a: &Account,
    now: DateTime<Utc>,
    table: &str,
    entity: &Entity,
    etag: Option<&str>,
) -> Result<Request, AzureError> {
    let (pk, rk) = keys(entity)?;
    let body = Value::Object(entity.clone()).to_string().into_bytes();
    let headers = vec![("If-Match".into(), etag.unwrap_or("*").into())];
    Ok(build(a, now, "PUT", entity_url(a, table, &pk, &rk), headers, body))
}

/// Answers the new ETag of a written entity.
pub fn parse_write(r: Response, operation: &'static str) -> Result<Option<String>, AzureError> {
    let r = r.check(operation)?;
    Ok(r.header("etag").map(str::to_string))
}

pub fn get_entity(a: &Account, now: DateTime<Utc>, table: &str, pk: &str, rk: &str) -> Request {
    build(a, now, "GET", entity_url(a, table, pk, rk), vec![], vec![])
}

/// `Ok(None)` for a missing entity; otherwise the entity without OData annotations, and its ETag.
pub fn parse_get_entity(r: Response) -> Result<Option<(Entity, String)>, AzureError> {
    if r.status == 404 {
        return Ok(None);
    }
    let r = r.check("get entity")?;
    let etag = r.header("etag").unwrap_or("").to_string();
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|e| AzureError::Malformed { operation: "get entity", detail: e.to_string() })?;
    match v {
        Value::Object(m) => Ok(Some((clean(m), etag))),
        _ => Err(AzureError::Malformed { operation: "get entity", detail: "not an object".into() }),
    }
}

pub fn delete_entity(a: &Account, now: DateTime<Utc>, table: &str, pk: &str, rk: &str, etag: Option<&str>) -> Request {
    let headers = vec![("If-Match".into(), etag.unwrap_or("*").into())];
    build(a, now, "DELETE", entity_url(a, table, pk, rk), headers, vec![])
}

/// Deleting a missing entity is success unless a specific ETag was required.
pub fn parse_delete_entity(r: Response) -> Result<(), AzureError> {
    if r.status == 404 {
        return Ok(());
    }
    r.check("delete entity").map(|_| ())
}

/// Where a query page stopped; pass back to get the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    pub next_partition_key: String,
    pub next_row_key: Option<String>,
}

/// Queries `table` with an OData `$filter`, at most `top` entities per page.
pub fn query(
    a: &Account,
    now: DateTime<Utc>,
    table: &str,
    filter: Option<&str>,
    top: Option<u32>,
    cont: Option<&Continuation>,
) -> Request {
    query_select(a, now, table, filter, &[], top, cont)
}

/// [`query`] answering only the `select`ed properties (all when empty).
pub fn query_select(
    a: &Account,
    now: DateTime<Utc>,
    table: &str,
    filter: Option<&str>,
    select: &[&str],
    top: Option<u32>,
    cont: Option<&Continuation>,
) -> Request {
    let mut params = Vec::new();
    if let Some(f) = filter.filter(|f| !f.is_empty()) {
        params.push(format!("$filter={}", enc(f)));
    }
    if !select.is_empty() {
        params.push(format!("$select={}", enc(&select.join(","))));
    }
    if let Some(t) = top {
        params.push(format!("$top={t}"));
    }
    if let Some(c) = cont {
        params.push(format!("NextPartitionKey={}", enc(&c.next_partition_key)));
        if let Some(rk) = &c.next_row_key {
            params.push(format!("NextRowKey={}", enc(rk)));
        }
    }
    let mut url = format!("{}/{}()", a.table_endpoint, table);
    if !params.is_empty() {
        url.push('?');
        url.push_str(&params.join("&"));
    }
    build(a, now, "GET", url, vec![], vec![])
}

#[derive(Debug, Clone)]
pub struct QueryPage {
    /// Each entity with its ETag.
    pub entities: Vec<(Entity, String)>,
    pub continuation: Option<Continuation>,
}

pub fn parse_query(r: Response) -> Result<QueryPage, AzureError> {
    if r.status == 404 {
        // A table that was never created holds nothing.
        return Ok(QueryPage { entities: vec![], continuation: None });
    }
    let r = r.check("query entities")?;
    let continuation = r.header("x-ms-continuation-NextPartitionKey").map(|pk| Continuation {
        next_partition_key: pk.to_string(),
        next_row_key: r.header("x-ms-continuation-NextRowKey").map(str::to_string),
    });
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|e| AzureError::Malformed { operation: "query entities", detail: e.to_string() })?;
    let entities = v["value"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e {
            Value::Object(mut m) => {
                let etag = m.remove("odata.etag").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                Some((clean(m), etag))
            }
            _ => None,
        })
        .collect();
    Ok(QueryPage { entities, continuation })
}

fn keys(e: &Entity) -> Result<(String, String), AzureError> {
    let get = |k: &'static str| {
        e.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(AzureError::InvalidArgument { field: k, detail: "missing".into() })
    };
    Ok((get("PartitionKey")?, get("RowKey")?))
}

/// Drops `odata.*` members, `Timestamp` and type annotations: callers read by field name.
fn clean(mut m: Entity) -> Entity {
    m.retain(|k, _| !k.starts_with("odata.") && !k.starts_with("Timestamp") && !k.ends_with("@odata.type"));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Account {
        Account::from_connection_string("UseDevelopmentStorage=true").unwrap()
    }

    #[test]
    fn int64_round_trips_as_annotated_string() {
        let mut e = Entity::new();
        set_i64(&mut e, "size", 5_000_000_000);
        assert_eq!(e["size"], "5000000000");
        assert_eq!(e["size@odata.type"], "Edm.Int64");
        assert_eq!(get_i64(&e, "size"), Some(5_000_000_000));
    }

    #[test]
    fn keys_are_quoted_and_merge_uses_etag() {
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), "o'k".into());
        e.insert("RowKey".into(), "r 1".into());
        let r = merge_entity(&dev(), Utc::now(), "t", &e, Some("W/\"1\"")).unwrap();
        assert_eq!(r.method, "MERGE");
        assert!(r.url.ends_with("/t(PartitionKey='o%27%27k',RowKey='r%201')"), "{}", r.url);
        assert_eq!(r.header("if-match"), Some("W/\"1\""));
        assert!(merge_entity(&dev(), Utc::now(), "t", &Entity::new(), None).is_err());
    }

    #[test]
    fn query_pages_carry_continuation() {
        let r = query_select(&dev(), Utc::now(), "t", None, &["status", "created_at"], Some(5), None);
        assert!(r.url.ends_with("/t()?$select=status%2Ccreated_at&$top=5"), "{}", r.url);
        let c = Continuation { next_partition_key: "p".into(), next_row_key: Some("r".into()) };
        let r = query(&dev(), Utc::now(), "t", Some("a eq 'x'"), Some(5), Some(&c));
        assert!(r.url.ends_with("/t()?$filter=a%20eq%20%27x%27&$top=5&NextPartitionKey=p&NextRowKey=r"), "{}", r.url);
        let resp = Response {
            status: 200,
            headers: vec![("x-ms-continuation-NextPartitionKey".into(), "p2".into())],
            body:
                br#"{"value":[{"odata.etag":"e1","PartitionKey":"a","RowKey":"b","n@odata.type":"Edm.Int64","n":"7"}]}"#
                    .to_vec(),
        };
        let page = parse_query(resp).unwrap();
        assert_eq!(page.entities[0].1, "e1");
        assert_eq!(get_i64(&page.entities[0].0, "n"), Some(7));
        assert!(!page.entities[0].0.contains_key("odata.etag"));
        assert_eq!(page.continuation.unwrap().next_partition_key, "p2");
    }

    #[test]
    fn table_errors_read_odata_json() {
        let body = concat!(
            r#"{"odata.error":{"code":"EntityAlreadyExists","#,
            r#""message":{"lang":"en-US","value":"The specified entity already exists.\nRequestId:x"}}}"#
        );
        let resp = Response { status: 409, headers: vec![], body: body.as_bytes().to_vec() };
        let e = parse_write(resp, "insert entity").unwrap_err();
        assert!(e.is_conflict());
        assert_eq!(
            e.to_string(),
            "insert entity failed: HTTP 409 EntityAlreadyExists: The specified entity already exists."
        );
    }
}

/// One operation of an entity group transaction.
#[derive(Debug, Clone)]
pub enum BatchOp {
    Insert(Entity),
    /// Replace; `None` means unconditional.
    Update(Entity, Option<String>),
    Delete {
        pk: String,
        rk: String,
    },
}

/// Most operations one `$batch` may carry (all in one partition).
pub const MAX_BATCH: usize = 100;

/// An entity group transaction: every operation succeeds or none does. All entities must share one
/// PartitionKey, at most [`MAX_BATCH`] of them.
pub fn batch(a: &Account, now: DateTime<Utc>, table: &str, ops: &[BatchOp], id: &str) -> Result<Request, AzureError> {
    if ops.is_empty() || ops.len() > MAX_BATCH {
        return Err(AzureError::InvalidArgument {
            field: "ops",
            detail: format!("a batch holds 1 to {MAX_BATCH} operations"),
        });
    }
    let (batch_b, change_b) = (format!("batch_{id}"), format!("changeset_{id}"));
    let mut body = format!("--{batch_b}\r\nContent-Type: multipart/mixed; boundary={change_b}\r\n\r\n");
    for (i, op) in ops.iter().enumerate() {
        let (method, url, etag, json) = match op {
            BatchOp::Insert(e) => {
                ("POST", format!("{}/{}", a.table_endpoint, table), None, Some(Value::Object(e.clone()).to_string()))
            }
            BatchOp::Update(e, etag) => {
                let (pk, rk) = keys(e)?;
                (
                    "PUT",
                    entity_url(a, table, &pk, &rk),
                    Some(etag.clone().unwrap_or_else(|| "*".into())),
                    Some(Value::Object(e.clone()).to_string()),
                )
            }
            BatchOp::Delete { pk, rk } => ("DELETE", entity_url(a, table, pk, rk), Some("*".to_string()), None),
        };
        body.push_str(&format!(
            "--{change_b}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        ));
        body.push_str(&format!(
            "{method} {url} HTTP/1.1\r\nContent-ID: {}\r\nAccept: application/json;odata=minimalmetadata\r\n\
             DataServiceVersion: 3.0;\r\n",
            i + 1
        ));
        if let Some(etag) = etag {
            body.push_str(&format!("If-Match: {etag}\r\n"));
        }
        match json {
            Some(j) => {
                body.push_str(&format!("Content-Type: application/json\r\nPrefer: return-no-content\r\n\r\n{j}\r\n"))
            }
            None => body.push_str("\r\n"),
        }
    }
    body.push_str(&format!("--{change_b}--\r\n--{batch_b}--\r\n"));
    let headers = vec![("Content-Type".to_string(), format!("multipart/mixed; boundary={batch_b}"))];
    let mut r = Request {
        method: "POST".into(),
        url: format!("{}/$batch", a.table_endpoint),
        headers,
        body: body.into_bytes(),
    };
    r.headers.push(("Accept".into(), "application/json;odata=minimalmetadata".into()));
    r.headers.push(("DataServiceVersion".into(), "3.0;NetFx".into()));
    r.headers.push(("MaxDataServiceVersion".into(), "3.0;NetFx".into()));
    authorize(a, Service::Table, &mut r, now);
    Ok(r)
}

/// `$batch` answers 202 even when the transaction failed: the inner statuses say. `Ok` when every
/// operation succeeded; otherwise the failing operation's status (and nothing was applied).
pub fn parse_batch(r: Response) -> Result<(), AzureError> {
    let r = r.check("batch")?;
    let text = String::from_utf8_lossy(&r.body);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
            let status: u16 = rest.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(0);
            if !(200..300).contains(&status) {
                let code = text.split("\"code\":\"").nth(1).and_then(|c| c.split('"').next()).unwrap_or("").to_string();
                return Err(AzureError::Service { operation: "batch", status, code, message: rest.trim().to_string() });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn batches_carry_each_operation_and_fail_as_a_whole() {
        let a = Account::from_connection_string("UseDevelopmentStorage=true").unwrap();
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), "p".into());
        e.insert("RowKey".into(), "r".into());
        let r = batch(
            &a,
            Utc::now(),
            "t",
            &[BatchOp::Insert(e.clone()), BatchOp::Update(e, Some("W/\"x\"".into()))],
            "abc",
        )
        .unwrap();
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(r.url.ends_with("/devstoreaccount1/$batch"));
        assert!(body.contains("POST http://127.0.0.1:10002/devstoreaccount1/t HTTP/1.1"));
        assert!(body.contains("PUT http://127.0.0.1:10002/devstoreaccount1/t(PartitionKey='p',RowKey='r') HTTP/1.1"));
        assert!(body.contains("If-Match: W/\"x\""));
        assert!(batch(&a, Utc::now(), "t", &[], "x").is_err());
        let body = b"--b\r\nHTTP/1.1 412 Precondition Failed\r\n\r\n\
            {\"odata.error\":{\"code\":\"UpdateConditionNotSatisfied\"}}";
        let failed = Response { status: 202, headers: vec![], body: body.to_vec() };
        let e = parse_batch(failed).unwrap_err();
        assert!(e.is_precondition_failed());
        let ok = Response {
            status: 202,
            headers: vec![],
            body: b"--b\r\nHTTP/1.1 204 No Content\r\n\r\n--b\r\nHTTP/1.1 201 Created\r\n".to_vec(),
        };
        assert!(parse_batch(ok).is_ok());
    }
}
