//! Blob service: containers, Block Blob uploads in blocks, reads, listing, deletion.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::sign::{authorize, Service};
use crate::{xml, Account, AzureError, Request, Response};

/// Characters escaped in query values (unreserved ones stay as they are).
pub(crate) const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Path segments keep `/` so virtual directories survive.
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// Azure's hard limit on blocks per blob.
pub const MAX_BLOCKS: usize = 50_000;

pub(crate) fn encode_path(p: &str) -> String {
    percent_encoding::utf8_percent_encode(p, PATH).to_string()
}

fn q(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY).to_string()
}

fn blob_url(a: &Account, container: &str, blob: &str) -> String {
    format!("{}/{}/{}", a.blob_endpoint, container, encode_path(blob))
}

fn build(
    a: &Account,
    now: DateTime<Utc>,
    method: &str,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Request {
    let mut r = Request { method: method.into(), url, headers, body };
    authorize(a, Service::Blob, &mut r, now);
    r
}

/// Characters of an attempt's block-id prefix.
pub const ATTEMPT_LEN: usize = 6;

/// The block-id prefix of one upload attempt: blocks of two attempts at the same blob (a redelivered job
/// whose first worker still runs) never share an id, so a commit holds one attempt's bytes only.
pub fn attempt_prefix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..ATTEMPT_LEN].to_string()
}

/// Block `index` of an attempt. Every id of a blob must have the same length: 6 prefix characters, a dash,
/// a zero-padded 7-digit index (the 14 characters of the earlier `block-NNNNNNNN` ids too).
pub fn block_id(attempt: &str, index: u32) -> String {
    assert_eq!(attempt.len(), ATTEMPT_LEN, "attempt prefixes have a fixed length");
    base64::engine::general_purpose::STANDARD.encode(format!("{attempt}-{index:07}"))
}

pub fn create_container(a: &Account, now: DateTime<Utc>, container: &str) -> Request {
    build(a, now, "PUT", format!("{}/{}?restype=container", a.blob_endpoint, container), vec![], vec![])
}

/// Create-container succeeds when it already exists (409 ContainerAlreadyExists).
pub fn parse_create_container(r: Response) -> Result<(), AzureError> {
    if r.status == 409 {
        return Ok(());
    }
    r.check("create container").map(|_| ())
}

pub fn put_block(a: &Account, now: DateTime<Utc>, container: &str, blob: &str, id: &str, data: Vec<u8>) -> Request {
    let url = format!("{}?comp=block&blockid={}", blob_url(a, container, blob), q(id));
    build(a, now, "PUT", url, vec![], data)
}

/// Commits `ids` as the blob's content. `overwrite = false` sends `If-None-Match: *` so a retried or
/// duplicated job can never replace an existing backup.
#[allow(clippy::too_many_arguments)] // one per part of the REST call; callers name them all anyway
pub fn put_block_list(
    a: &Account,
    now: DateTime<Utc>,
    container: &str,
    blob: &str,
    ids: &[String],
    content_type: &str,
    metadata: &[(String, String)],
    overwrite: bool,
) -> Request {
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in ids {
        body.push_str(&format!("<Latest>{}</Latest>", xml::escape(id)));
    }
    body.push_str("</BlockList>");
    let mut headers = vec![
        ("Content-Type".to_string(), "application/xml".to_string()),
        ("x-ms-blob-content-type".to_string(), content_type.to_string()),
    ];
    if !overwrite {
        headers.push(("If-None-Match".into(), "*".into()));
    }
    for (k, v) in metadata {
        headers.push((format!("x-ms-meta-{k}"), v.clone()));
    }
    build(a, now, "PUT", format!("{}?comp=blocklist", blob_url(a, container, blob)), headers, body.into_bytes())
}

/// A small blob in one request (Put Blob), replacing any blob of that name.
pub fn put_blob(
    a: &Account,
    now: DateTime<Utc>,
    container: &str,
    blob: &str,
    content_type: &str,
    metadata: &[(String, String)],
    data: Vec<u8>,
) -> Request {
    let mut headers = vec![
        ("x-ms-blob-type".to_string(), "BlockBlob".to_string()),
        ("x-ms-blob-content-type".to_string(), content_type.to_string()),
    ];
    for (k, v) in metadata {
        headers.push((format!("x-ms-meta-{k}"), v.clone()));
    }
    build(a, now, "PUT", blob_url(a, container, blob), headers, data)
}

pub fn get_blob(a: &Account, now: DateTime<Utc>, container: &str, blob: &str) -> Request {
    build(a, now, "GET", blob_url(a, container, blob), vec![], vec![])
}

/// `len` bytes of a blob from `start` (`x-ms-range`): downloads in bounded pieces.
pub fn get_blob_range(a: &Account, now: DateTime<Utc>, container: &str, blob: &str, start: u64, len: u64) -> Request {
    let range = format!("bytes={start}-{}", start + len.max(1) - 1);
    build(a, now, "GET", blob_url(a, container, blob), vec![("x-ms-range".into(), range)], vec![])
}

pub fn get_properties(a: &Account, now: DateTime<Utc>, container: &str, blob: &str) -> Request {
    build(a, now, "HEAD", blob_url(a, container, blob), vec![], vec![])
}

/// Blob properties from a HEAD/GET answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProperties {
    pub content_length: u64,
    pub metadata: Vec<(String, String)>,
}

pub fn parse_properties(r: Response) -> Result<BlobProperties, AzureError> {
    let r = r.check("get blob properties")?;
    let content_length = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let metadata = r
        .headers
        .iter()
        .filter_map(|(k, v)| k.to_ascii_lowercase().strip_prefix("x-ms-meta-").map(|n| (n.to_string(), v.clone())))
        .collect();
    Ok(BlobProperties { content_length, metadata })
}

pub fn delete_blob(a: &Account, now: DateTime<Utc>, container: &str, blob: &str) -> Request {
    build(
        a,
        now,
        "DELETE",
        blob_url(a, container, blob),
        vec![("x-ms-delete-snapshots".into(), "include".into())],
        vec![],
    )
}

/// Deleting what is already gone is success: retention and retries may race.
pub fn parse_delete_blob(r: Response) -> Result<(), AzureError> {
    if r.status == 404 {
        return Ok(());
    }
    r.check("delete blob").map(|_| ())
}

/// What keeps backups recoverable after a delete or an overwrite, as the data plane reports it: blob soft
/// delete (Blob service properties) and the container's immutability (container properties). Versioning and
/// container soft delete are management-plane settings the data plane does not show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    /// Days a deleted or overwritten blob is kept; `None` when soft delete is off.
    pub soft_delete_days: Option<u32>,
    /// A time-based retention policy on the container.
    pub immutability_policy: bool,
    pub legal_hold: bool,
    /// Version-level immutability on the container.
    pub version_immutability: bool,
}

fn service_url(a: &Account) -> String {
    format!("{}/?restype=service&comp=properties", a.blob_endpoint)
}

pub fn get_service_properties(a: &Account, now: DateTime<Utc>) -> Request {
    build(a, now, "GET", service_url(a), vec![], vec![])
}

/// Blob soft delete's retention from the service properties: `None` when it is off.
pub fn parse_soft_delete(r: Response) -> Result<Option<u32>, AzureError> {
    let r = r.check("get blob service properties")?;
    let doc = String::from_utf8_lossy(&r.body);
    // Logging has a RetentionPolicy with the same inner tags: only the DeleteRetentionPolicy block counts.
    let Some(policy) = xml::blocks(&doc, "DeleteRetentionPolicy").into_iter().next() else { return Ok(None) };
    if !xml::first(policy, "Enabled").is_some_and(|e| e.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    Ok(xml::first(policy, "Days").and_then(|d| d.trim().parse().ok()))
}

/// Turns blob soft delete on, keeping deleted and overwritten blobs `days` days (1–365). Only this element is
/// sent: the service's other properties stay as they are.
pub fn set_soft_delete(a: &Account, now: DateTime<Utc>, days: u32) -> Request {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceProperties><DeleteRetentionPolicy>\
         <Enabled>true</Enabled><Days>{days}</Days></DeleteRetentionPolicy></StorageServiceProperties>"
    );
    let headers = vec![("content-type".into(), "application/xml".into())];
    build(a, now, "PUT", service_url(a), headers, body.into_bytes())
}

pub fn parse_set_service_properties(r: Response) -> Result<(), AzureError> {
    r.check("set blob service properties").map(|_| ())
}

pub fn get_container_properties(a: &Account, now: DateTime<Utc>, container: &str) -> Request {
    build(a, now, "HEAD", format!("{}/{}?restype=container", a.blob_endpoint, container), vec![], vec![])
}

/// The container's immutability, into `p`; a container not created yet has none.
pub fn parse_container_protection(r: Response, p: &mut Protection) -> Result<(), AzureError> {
    if r.status == 404 {
        return Ok(());
    }
    let r = r.check("get container properties")?;
    let yes = |h: &str| r.header(h).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    p.immutability_policy = yes("x-ms-has-immutability-policy");
    p.legal_hold = yes("x-ms-has-legal-hold");
    p.version_immutability = yes("x-ms-immutable-storage-with-versioning-enabled");
    Ok(())
}

/// One page of blob names under `prefix`; `max_results` caps the page (Azure's own cap is 5 000).
pub fn list_blobs(
    a: &Account,
    now: DateTime<Utc>,
    container: &str,
    prefix: &str,
    marker: Option<&str>,
    max_results: Option<u32>,
) -> Request {
    let mut url = format!("{}/{}?restype=container&comp=list&include=metadata", a.blob_endpoint, container);
    if let Some(n) = max_results {
        url.push_str(&format!("&maxresults={n}"));
    }
    if !prefix.is_empty() {
        url.push_str(&format!("&prefix={}", q(prefix)));
    }
    if let Some(m) = marker.filter(|m| !m.is_empty()) {
        url.push_str(&format!("&marker={}", q(m)));
    }
    build(a, now, "GET", url, vec![], vec![])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub size: u64,
    pub last_modified: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPage {
    pub items: Vec<BlobItem>,
    pub next_marker: Option<String>,
}

pub fn parse_list_blobs(r: Response) -> Result<BlobPage, AzureError> {
    let r = r.check("list blobs")?;
    let doc = String::from_utf8_lossy(&r.body);
    let items = xml::blocks(&doc, "Blob")
        .into_iter()
        .map(|b| BlobItem {
            name: xml::first(b, "Name").unwrap_or_default(),
            size: xml::first(b, "Content-Length").and_then(|s| s.parse().ok()).unwrap_or(0),
            last_modified: xml::first(b, "Last-Modified").unwrap_or_default(),
        })
        .collect();
    let next_marker = xml::first(&doc, "NextMarker").filter(|m| !m.is_empty());
    Ok(BlobPage { items, next_marker })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Account {
        Account::from_connection_string("UseDevelopmentStorage=true").unwrap()
    }

    #[test]
    fn block_ids_have_equal_length_and_differ_between_attempts() {
        let (a, b) = (attempt_prefix(), attempt_prefix());
        assert_ne!(a, b);
        assert_eq!(block_id(&a, 0).len(), block_id(&b, 49_999).len());
        assert_eq!(block_id(&a, 0).len(), base64::engine::general_purpose::STANDARD.encode("block-00000000").len());
        assert_ne!(block_id(&a, 1), block_id(&a, 2));
        assert_ne!(block_id(&a, 1), block_id(&b, 1));
    }

    #[test]
    fn soft_delete_is_read_from_its_own_policy_block() {
        let answer = |body: &str| Response { status: 200, headers: vec![], body: body.as_bytes().to_vec() };
        let logging_on = "<StorageServiceProperties><Logging><RetentionPolicy><Enabled>true</Enabled><Days>9</Days>\
            </RetentionPolicy></Logging><DeleteRetentionPolicy><Enabled>false</Enabled></DeleteRetentionPolicy>\
            </StorageServiceProperties>";
        assert_eq!(parse_soft_delete(answer(logging_on)).unwrap(), None, "the logs' retention is not soft delete");
        let on = "<StorageServiceProperties><DeleteRetentionPolicy><Enabled>true</Enabled><Days>14</Days>\
            <AllowPermanentDelete>false</AllowPermanentDelete></DeleteRetentionPolicy></StorageServiceProperties>";
        assert_eq!(parse_soft_delete(answer(on)).unwrap(), Some(14));
        assert_eq!(parse_soft_delete(answer("<StorageServiceProperties/>")).unwrap(), None);
        let set = set_soft_delete(&dev(), Utc::now(), 7);
        assert_eq!((set.method.as_str(), set.url.ends_with("/?restype=service&comp=properties")), ("PUT", true));
        assert!(String::from_utf8_lossy(&set.body).contains("<Enabled>true</Enabled><Days>7</Days>"));
        let mut p = Protection::default();
        let headers = vec![
            ("x-ms-has-legal-hold".into(), "true".into()),
            ("x-ms-has-immutability-policy".into(), "false".into()),
        ];
        parse_container_protection(Response { status: 200, headers, body: vec![] }, &mut p).unwrap();
        assert_eq!(p, Protection { legal_hold: true, ..Default::default() });
    }

    #[test]
    fn block_list_refuses_overwrite_and_carries_metadata() {
        let r = put_block_list(
            &dev(),
            Utc::now(),
            "c",
            "p/x.gz",
            &[block_id("abcdef", 0)],
            "application/gzip",
            &[("sha256".into(), "ab".into())],
            false,
        );
        assert_eq!(r.header("if-none-match"), Some("*"));
        assert_eq!(r.header("x-ms-meta-sha256"), Some("ab"));
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
        assert!(String::from_utf8_lossy(&r.body).contains("<Latest>YWJjZGVmLTAwMDAwMDA=</Latest>"));
    }

    #[test]
    fn block_id_is_query_encoded_in_url() {
        let r = put_block(&dev(), Utc::now(), "c", "a b/x", "ab+/=", vec![1]);
        assert!(r.url.ends_with("/c/a%20b/x?comp=block&blockid=ab%2B%2F%3D"), "{}", r.url);
    }

    #[test]
    fn parses_list_with_marker() {
        let body = "<EnumerationResults><Blobs><Blob><Name>a/1</Name><Properties>\
            <Content-Length>12</Content-Length><Last-Modified>x</Last-Modified></Properties></Blob></Blobs>\
            <NextMarker>m1</NextMarker></EnumerationResults>";
        let p = parse_list_blobs(Response { status: 200, headers: vec![], body: body.into() }).unwrap();
        assert_eq!(p.items, vec![BlobItem { name: "a/1".into(), size: 12, last_modified: "x".into() }]);
        assert_eq!(p.next_marker.as_deref(), Some("m1"));
    }

    #[test]
    fn service_errors_are_typed() {
        let body = "<?xml version=\"1.0\"?><Error><Code>BlobAlreadyExists</Code>\
            <Message>The specified blob already exists.\nRequestId:1</Message></Error>";
        let e = parse_create_container(Response { status: 412, headers: vec![], body: body.into() }).unwrap_err();
        assert_eq!(e.status(), Some(412));
        assert_eq!(
            e.to_string(),
            "create container failed: HTTP 412 BlobAlreadyExists: The specified blob already exists."
        );
    }
}
