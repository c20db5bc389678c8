//! Queue service: the job queue. A message's visibility timeout is the job's lease.

use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::sign::{authorize, Service};
use crate::{xml, Account, AzureError, Request, Response};

fn build(a: &Account, now: DateTime<Utc>, method: &str, url: String, body: Vec<u8>) -> Request {
    let mut r = Request { method: method.into(), url, headers: vec![], body };
    if !r.body.is_empty() {
        r.headers.push(("Content-Type".into(), "application/xml".into()));
    }
    authorize(a, Service::Queue, &mut r, now);
    r
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::blob::QUERY).to_string()
}

pub fn create_queue(a: &Account, now: DateTime<Utc>, queue: &str) -> Request {
    build(a, now, "PUT", format!("{}/{}", a.queue_endpoint, queue), vec![])
}

pub fn parse_create_queue(r: Response) -> Result<(), AzureError> {
    r.check("create queue").map(|_| ())
}

/// Enqueues `text` (base64-encoded, as the Azure SDKs and Functions expect).
pub fn put_message(a: &Account, now: DateTime<Utc>, queue: &str, text: &str) -> Request {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let body = format!("<QueueMessage><MessageText>{b64}</MessageText></QueueMessage>");
    // messagettl=-1: a job waits until a worker takes it, however long the outage.
    build(a, now, "POST", format!("{}/{}/messages?messagettl=-1", a.queue_endpoint, queue), body.into_bytes())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub pop_receipt: String,
    pub dequeue_count: u32,
    pub text: String,
}

pub fn parse_put_message(r: Response) -> Result<String, AzureError> {
    let r = r.check("put message")?;
    Ok(xml::first(&String::from_utf8_lossy(&r.body), "MessageId").unwrap_or_default())
}

/// Leases up to `max` messages for `visibility_secs`.
pub fn get_messages(a: &Account, now: DateTime<Utc>, queue: &str, max: u32, visibility_secs: u32) -> Request {
    let url =
        format!("{}/{}/messages?numofmessages={max}&visibilitytimeout={visibility_secs}", a.queue_endpoint, queue);
    build(a, now, "GET", url, vec![])
}

pub fn parse_get_messages(r: Response) -> Result<Vec<Message>, AzureError> {
    let r = r.check("get messages")?;
    let doc = String::from_utf8_lossy(&r.body);
    xml::blocks(&doc, "QueueMessage")
        .into_iter()
        .map(|m| {
            let raw = xml::first(m, "MessageText").unwrap_or_default();
            let text = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                // Messages put by other tools may be plain text.
                .unwrap_or(raw);
            Ok(Message {
                id: xml::first(m, "MessageId").unwrap_or_default(),
                pop_receipt: xml::first(m, "PopReceipt").unwrap_or_default(),
                dequeue_count: xml::first(m, "DequeueCount").and_then(|d| d.parse().ok()).unwrap_or(0),
                text,
            })
        })
        .collect()
}

/// Extends (or shortens) a leased message's invisibility. Answers a new pop receipt.
pub fn update_visibility(
    a: &Account,
    now: DateTime<Utc>,
    queue: &str,
    id: &str,
    pop_receipt: &str,
    visibility_secs: u32,
) -> Request {
    let url = format!(
        "{}/{}/messages/{}?popreceipt={}&visibilitytimeout={visibility_secs}",
        a.queue_endpoint,
        queue,
        enc(id),
        enc(pop_receipt)
    );
    build(a, now, "PUT", url, vec![])
}

pub fn parse_update_visibility(r: Response) -> Result<String, AzureError> {
    let r = r.check("update message")?;
    r.header("x-ms-popreceipt")
        .map(str::to_string)
        .ok_or(AzureError::Malformed { operation: "update message", detail: "no x-ms-popreceipt".into() })
}

pub fn delete_message(a: &Account, now: DateTime<Utc>, queue: &str, id: &str, pop_receipt: &str) -> Request {
    let url = format!("{}/{}/messages/{}?popreceipt={}", a.queue_endpoint, queue, enc(id), enc(pop_receipt));
    build(a, now, "DELETE", url, vec![])
}

pub fn parse_delete_message(r: Response) -> Result<(), AzureError> {
    r.check("delete message").map(|_| ())
}

/// Queue metadata; its answer carries the approximate message count.
pub fn get_metadata(a: &Account, now: DateTime<Utc>, queue: &str) -> Request {
    build(a, now, "GET", format!("{}/{}?comp=metadata", a.queue_endpoint, queue), vec![])
}

pub fn parse_approximate_count(r: Response) -> Result<u64, AzureError> {
    let r = r.check("get queue metadata")?;
    Ok(r.header("x-ms-approximate-messages-count").and_then(|v| v.parse().ok()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Account {
        Account::from_connection_string("UseDevelopmentStorage=true").unwrap()
    }

    #[test]
    fn pop_receipts_are_percent_encoded() {
        let r = delete_message(&dev(), Utc::now(), "q", "id1", "AgAAAA+/=");
        assert!(r.url.ends_with("/q/messages/id1?popreceipt=AgAAAA%2B%2F%3D"), "{}", r.url);
    }

    #[test]
    fn messages_round_trip_base64() {
        let r = put_message(&dev(), Utc::now(), "q", "{\"a\":\"é<\"}");
        let body = String::from_utf8(r.body.clone()).unwrap();
        let b64 = xml::first(&body, "MessageText").unwrap();
        let resp = format!(
            "<QueueMessagesList><QueueMessage><MessageId>m</MessageId><PopReceipt>p</PopReceipt>\
            <DequeueCount>3</DequeueCount><MessageText>{b64}</MessageText></QueueMessage></QueueMessagesList>"
        );
        let msgs = parse_get_messages(Response { status: 200, headers: vec![], body: resp.into() }).unwrap();
        assert_eq!(msgs[0].text, "{\"a\":\"é<\"}");
        assert_eq!(msgs[0].dequeue_count, 3);
    }
}
