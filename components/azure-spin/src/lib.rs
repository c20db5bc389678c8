//! The I/O edge for components: sends `dilux-azure` requests through `spin_sdk::http::send` and
//! offers typed Table/Queue helpers over the domain's entity mapping.

pub mod config;
pub mod log;
pub mod stores;

use chrono::Utc;
use dilux_azure::{queue, table, Account, AzureError, Request, Response};
use dilux_domain::entity::{from_entity, to_entity};
use serde::{de::DeserializeOwned, Serialize};
use spin_sdk::http::Method;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Azure(#[from] AzureError),
    #[error("{operation}: cannot reach Azure Storage: {detail}")]
    Unreachable { operation: &'static str, detail: String },
    #[error("{table}/{key}: stored record is unreadable: {detail}")]
    Corrupt { table: String, key: String, detail: String },
}

impl StoreError {
    pub fn status(&self) -> Option<u16> {
        match self {
            StoreError::Azure(e) => e.status(),
            _ => None,
        }
    }
}

/// Sends one request under dilux-azure's retry policy (Azurite resets connections under load).
/// Non-2xx answers that are not transient come back as `Ok` for the caller's parser.
pub async fn send(operation: &'static str, req: Request) -> Result<Response, StoreError> {
    Ok(send_with(dilux_azure::retry::RetryPolicy::DEFAULT.start(operation), req).await?.0)
}

/// [`send`] under `retry`; also says whether an earlier attempt may have been applied with its answer
/// lost ([`dilux_azure::retry::Retry::may_have_applied`]).
pub async fn send_with(mut retry: dilux_azure::retry::Retry, req: Request) -> Result<(Response, bool), StoreError> {
    use dilux_azure::retry::Outcome;
    use spin_sdk::http::{ErrorCode as E, SendError};
    while let Some(pause) = retry.next_attempt() {
        if !pause.is_zero() {
            // spin-sdk 5 has no async timer: a blocking wasi:clocks wait, of this instance only.
            std::thread::sleep(pause);
        }
        let method = match req.method.as_str() {
            "GET" => Method::Get,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        };
        let mut b = spin_sdk::http::Request::builder();
        b.method(method).uri(req.url.clone());
        for (k, v) in &req.headers {
            b.header(k.clone(), v.clone());
        }
        b.body(req.body.clone());
        let outcome = match spin_sdk::http::send::<_, spin_sdk::http::Response>(b.build()).await {
            Ok(r) => {
                let status = *r.status();
                let headers = r.headers().map(|(k, v)| (k.to_string(), v.as_str().unwrap_or("").to_string())).collect();
                Outcome::Answered(Response { status, headers, body: r.into_body() })
            }
            // The host is not in allowed_outbound_hosts, or the URL is unusable: it stays that way.
            Err(
                e
                @ (SendError::RequestConversion(_) | SendError::Http(E::HttpRequestDenied | E::HttpRequestUriInvalid)),
            ) => Outcome::Refused(e.to_string()),
            // Failures before any byte of the request left: the service never saw it.
            Err(
                e @ SendError::Http(
                    E::DnsTimeout
                    | E::DnsError(_)
                    | E::DestinationNotFound
                    | E::DestinationUnavailable
                    | E::DestinationIpProhibited
                    | E::DestinationIpUnroutable
                    | E::ConnectionRefused
                    | E::ConnectionTimeout
                    | E::TlsProtocolError
                    | E::TlsCertificateError
                    | E::TlsAlertReceived(_),
                ),
            ) => Outcome::Unsent(e.to_string()),
            Err(e) => Outcome::Transport(e.to_string()),
        };
        if let Some(resp) = retry.record(outcome) {
            let applied = retry.may_have_applied();
            return Ok((resp, applied));
        }
    }
    match retry.give_up() {
        AzureError::Unreachable { operation, attempts, detail } => {
            Err(StoreError::Unreachable { operation, detail: format!("{detail} (attempts: {attempts})") })
        }
        other => Err(other.into()),
    }
}

/// Creates the tables, queue and container the app needs. Idempotent.
pub async fn ensure_storage(
    a: &Account,
    tables: &[&str],
    queues: &[&str],
    containers: &[&str],
) -> Result<(), StoreError> {
    for t in tables {
        table::parse_create_table(send("create table", table::create_table(a, Utc::now(), t)).await?)?;
    }
    for q in queues {
        queue::parse_create_queue(send("create queue", queue::create_queue(a, Utc::now(), q)).await?)?;
    }
    for c in containers {
        dilux_azure::blob::parse_create_container(
            send("create container", dilux_azure::blob::create_container(a, Utc::now(), c)).await?,
        )?;
    }
    Ok(())
}

/// Creates everything the app stores into: its tables, the jobs queue, the backups container.
pub async fn ensure_app_storage(a: &Account, container: &str) -> Result<(), StoreError> {
    use dilux_domain::tables as t;
    ensure_storage(
        a,
        &[
            t::ENGINES,
            t::DATABASES,
            t::HISTORY,
            t::SCHEDULE,
            t::POLICIES,
            t::AUDIT,
            t::USERS,
            t::AUTH_CACHE,
            t::SETTINGS,
            t::ACCESS_REQUESTS,
            t::RESTORES,
            t::NOTIFICATIONS,
            t::COUNTERS,
        ],
        &[dilux_domain::JOBS_QUEUE, dilux_domain::restore::RESTORE_JOBS_QUEUE],
        &[container],
    )
    .await
}

/// Inserts, creating the app's storage on first use (a fresh storage account has none).
pub async fn insert_or_init<T: Serialize>(
    a: &Account,
    container: &str,
    tbl: &str,
    pk: &str,
    rk: &str,
    record: &T,
) -> Result<(), StoreError> {
    match insert(a, tbl, pk, rk, record).await {
        Err(e) if e.status() == Some(404) => {
            ensure_app_storage(a, container).await?;
            insert(a, tbl, pk, rk, record).await
        }
        other => other,
    }
}

fn decode<T: DeserializeOwned>(tbl: &str, key: &str, e: table::Entity) -> Result<T, StoreError> {
    from_entity(e).map_err(|err| StoreError::Corrupt { table: tbl.into(), key: key.into(), detail: err.to_string() })
}

/// A record and its ETag.
pub type Tagged<T> = (T, String);

pub async fn get<T: DeserializeOwned>(
    a: &Account,
    tbl: &str,
    pk: &str,
    rk: &str,
) -> Result<Option<Tagged<T>>, StoreError> {
    let r = send("get entity", table::get_entity(a, Utc::now(), tbl, pk, rk)).await?;
    match table::parse_get_entity(r)? {
        None => Ok(None),
        Some((e, etag)) => Ok(Some((decode(tbl, rk, e)?, etag))),
    }
}

/// Inserts a new record; `Err` with status 409 when the key exists.
pub async fn insert<T: Serialize>(a: &Account, tbl: &str, pk: &str, rk: &str, record: &T) -> Result<(), StoreError> {
    insert_entity(a, tbl, &to_entity(pk, rk, record), false).await
}

/// Inserts an entity; `Err` with status 409 when its key exists — unless the row there is this very
/// entity, written by an attempt whose answer was lost (this request's, or, with `unsure`, an earlier
/// request's the caller made, such as a batch).
pub async fn insert_entity(a: &Account, tbl: &str, e: &table::Entity, unsure: bool) -> Result<(), StoreError> {
    let retry = dilux_azure::retry::RetryPolicy::DEFAULT.start("insert entity");
    let (r, applied) = send_with(retry, table::insert_entity(a, Utc::now(), tbl, e)).await?;
    match table::parse_write(r, "insert entity") {
        Ok(_) => Ok(()),
        Err(err) if err.is_conflict() && (applied || unsure) && holds(a, tbl, e).await? => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Whether the stored row of `e`'s keys holds exactly `e`: then a write refused as a conflict (409) or
/// as changed (412) after a lost answer was refused because of itself.
pub async fn holds(a: &Account, tbl: &str, e: &table::Entity) -> Result<bool, StoreError> {
    let key = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let r = send("get entity", table::get_entity(a, Utc::now(), tbl, &key("PartitionKey"), &key("RowKey"))).await?;
    Ok(table::parse_get_entity(r)?.is_some_and(|(stored, _)| dilux_domain::entity::same_entity(e, &stored)))
}

/// Replaces a record. `etag: Some` fails with 412 if it changed since it was read.
pub async fn replace<T: Serialize>(
    a: &Account,
    tbl: &str,
    pk: &str,
    rk: &str,
    record: &T,
    etag: Option<&str>,
) -> Result<Option<String>, StoreError> {
    update_entity(a, tbl, &to_entity(pk, rk, record), etag, false).await
}

/// Replaces an entity; answers the new ETag. `etag: Some` fails with 412 if it changed since it was read —
/// unless the row is this very entity, written by an attempt whose answer was lost (this request's, or,
/// with `unsure`, an earlier request's the caller made, such as a batch); its new ETag is then unknown.
pub async fn update_entity(
    a: &Account,
    tbl: &str,
    e: &table::Entity,
    etag: Option<&str>,
    unsure: bool,
) -> Result<Option<String>, StoreError> {
    let req = table::update_entity(a, Utc::now(), tbl, e, etag)?;
    let (r, applied) = send_with(dilux_azure::retry::RetryPolicy::DEFAULT.start("update entity"), req).await?;
    match table::parse_write(r, "update entity") {
        Err(err) if err.status() == Some(412) && (applied || unsure) && holds(a, tbl, e).await? => Ok(None),
        other => Ok(other?),
    }
}

/// Writes a record whether or not it exists (last writer wins): for rows that are only ever replaced
/// whole, such as settings and tick records.
pub async fn upsert<T: Serialize>(
    a: &Account,
    container: &str,
    tbl: &str,
    pk: &str,
    rk: &str,
    record: &T,
) -> Result<(), StoreError> {
    for _ in 0..3 {
        match replace(a, tbl, pk, rk, record, None).await {
            Err(e) if e.status() == Some(404) => match insert_or_init(a, container, tbl, pk, rk, record).await {
                // Someone created it meanwhile: replace theirs.
                Err(e) if e.status() == Some(409) => continue,
                other => return other,
            },
            other => return other.map(|_| ()),
        }
    }
    replace(a, tbl, pk, rk, record, None).await.map(|_| ())
}

pub async fn delete(a: &Account, tbl: &str, pk: &str, rk: &str) -> Result<(), StoreError> {
    table::parse_delete_entity(send("delete entity", table::delete_entity(a, Utc::now(), tbl, pk, rk, None)).await?)?;
    Ok(())
}

/// Deletes a record only if it is still the version `etag` names (a 412 leaves it, changed by someone).
pub async fn delete_if(a: &Account, tbl: &str, pk: &str, rk: &str, etag: &str) -> Result<(), StoreError> {
    let req = table::delete_entity(a, Utc::now(), tbl, pk, rk, Some(etag));
    table::parse_delete_entity(send("delete entity", req).await?)?;
    Ok(())
}

/// Takes back the row of a job whose message may not have been queued, unless a worker has it: `false`
/// when the row is no longer `waiting` (a worker started it between the Put Message and now, so the
/// job runs and the row must stay for its result), `true` when it is gone. The delete names the version
/// read, so a worker starting it in between wins.
pub async fn withdraw<T: DeserializeOwned>(
    a: &Account,
    tbl: &str,
    pk: &str,
    rk: &str,
    waiting: impl Fn(&T) -> bool,
) -> Result<bool, StoreError> {
    let Some((row, etag)) = get::<T>(a, tbl, pk, rk).await? else { return Ok(true) };
    if !waiting(&row) {
        return Ok(false);
    }
    match delete_if(a, tbl, pk, rk, &etag).await {
        Err(e) if e.status() == Some(412) => Ok(false),
        other => other.map(|_| true),
    }
}

/// Every record matching `filter`, following continuations.
pub async fn query_all<T: DeserializeOwned>(
    a: &Account,
    tbl: &str,
    filter: &str,
) -> Result<Vec<Tagged<T>>, StoreError> {
    query_first(a, tbl, filter, &[], None).await
}

/// The first `limit` records matching `filter` in key order (all without one), following
/// continuations only as far as needed; only the `select`ed properties are read (all when empty).
pub async fn query_first<T: DeserializeOwned>(
    a: &Account,
    tbl: &str,
    filter: &str,
    select: &[&str],
    limit: Option<usize>,
) -> Result<Vec<Tagged<T>>, StoreError> {
    let mut out = Vec::new();
    let mut cont = None;
    loop {
        let left = limit.map_or(1000, |l| l.saturating_sub(out.len()).min(1000)) as u32;
        if left == 0 {
            return Ok(out);
        }
        let req = table::query_select(a, Utc::now(), tbl, Some(filter), select, Some(left), cont.as_ref());
        let page = table::parse_query(send("query entities", req).await?)?;
        for (e, etag) in page.entities {
            let key = e.get("RowKey").and_then(|v| v.as_str()).unwrap_or("").to_string();
            out.push((decode(tbl, &key, e)?, etag));
        }
        match page.continuation {
            Some(c) => cont = Some(c),
            None => return Ok(out),
        }
    }
}

/// Every configured database.
pub async fn all_databases(a: &Account) -> Result<Vec<dilux_domain::Database>, StoreError> {
    use dilux_domain::tables as t;
    let filter = format!("PartitionKey eq {}", table::literal(t::DATABASE_PK));
    Ok(query_all(a, t::DATABASES, &filter).await?.into_iter().map(|(d, _)| d).collect())
}

/// Every engine (server).
pub async fn all_engines(a: &Account) -> Result<Vec<dilux_domain::Engine>, StoreError> {
    use dilux_domain::tables as t;
    let filter = format!("PartitionKey eq {}", table::literal(t::ENGINE_PK));
    Ok(query_all(a, t::ENGINES, &filter).await?.into_iter().map(|(e, _)| e).collect())
}

/// Every policy by id: the system defaults, then stored ones.
pub async fn policies(
    a: &Account,
) -> Result<std::collections::HashMap<String, dilux_domain::policy::BackupPolicy>, StoreError> {
    let tbl = dilux_domain::tables::POLICIES;
    let stored = query_all::<dilux_domain::policy::PolicyRow>(a, tbl, "PartitionKey eq 'policy'").await?;
    dilux_domain::policy::all_policies(stored.into_iter().map(|(row, _)| row)).map_err(|e| StoreError::Corrupt {
        table: tbl.into(),
        key: e.id.clone(),
        detail: e.source.to_string(),
    })
}

/// Retention's view of the history: every row of each database, with its keys.
pub async fn history_by_database(
    a: &Account,
    database_id: Option<&str>,
) -> Result<std::collections::HashMap<String, Vec<dilux_domain::BackupResult>>, StoreError> {
    let filter = match database_id {
        Some(id) => format!("database_id eq {}", table::literal(id)),
        None => String::new(),
    };
    let mut out: std::collections::HashMap<String, Vec<dilux_domain::BackupResult>> = std::collections::HashMap::new();
    for (r, _) in query_all::<dilux_domain::BackupResult>(a, dilux_domain::tables::HISTORY, &filter).await? {
        out.entry(r.database_id.clone()).or_default().push(r);
    }
    Ok(out)
}

/// Queues a message. Never repeated after a lost answer (a second copy would be a second job): that
/// fails as [`AzureError::Unconfirmed`], and the callers [`withdraw`] the job's row, so a copy that did
/// arrive finds no row and is dropped — or, if a worker already took it, the row stays and the job runs.
pub async fn put_message(a: &Account, q: &str, text: &str) -> Result<String, StoreError> {
    let retry = dilux_azure::retry::RetryPolicy::DEFAULT.start_once("put message");
    let (r, _) = send_with(retry, queue::put_message(a, Utc::now(), q, text)).await?;
    Ok(queue::parse_put_message(r)?)
}
