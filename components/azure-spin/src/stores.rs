//! `dilux-store`'s traits over Azure Table, Queue and Blob storage, and the two HTTP services the API
//! asks (the dumper-host's probe, the identity provider's keys) over Spin's outbound HTTP.

use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dilux_azure::table::literal;
use dilux_azure::{blob, queue, Account, BlobSas, SasPermissions};
use dilux_domain::audit::AuditLog;
use dilux_domain::backup::{HistoryStats, StatsFields};
use dilux_domain::manifest::{manifest_blob, MANIFEST_SUFFIX};
use dilux_domain::notify::{Outgoing, SendResult, NOTIFY_PATH};
use dilux_domain::probe::{ProbeRequest, ProbeResult, PROBE_PATH};
use dilux_domain::{tables, BackupResult};
use dilux_store::HourCount;
use dilux_store::{
    AuditQuery, Dumper, FileItem, FilePage, FileProperties, Files, History, HistoryQuery, KeySource, Protection,
    ReadLink, Records, ServiceError, StoreResult, Stores, Tagged,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::StoreError as AzureStoreError;

impl From<AzureStoreError> for dilux_store::StoreError {
    fn from(e: AzureStoreError) -> Self {
        let what = || e.to_string();
        match &e {
            AzureStoreError::Corrupt { table, key, detail } => {
                dilux_store::StoreError::Corrupt { table: table.clone(), key: key.clone(), detail: detail.clone() }
            }
            _ => match e.status() {
                Some(404) => dilux_store::StoreError::NotFound { what: what() },
                Some(409) => dilux_store::StoreError::Conflict { what: what() },
                Some(412) => dilux_store::StoreError::Changed { what: what() },
                _ => dilux_store::StoreError::Unavailable { operation: "Azure Storage".into(), detail: what() },
            },
        }
    }
}

/// The Azure side of every store, for one storage account and backups container.
#[derive(Clone)]
pub struct AzureStorage {
    pub account: Account,
    pub container: String,
}

/// One Table partition of records of type `T`.
pub struct TableRecords<T> {
    storage: AzureStorage,
    table: &'static str,
    pk: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<T> TableRecords<T> {
    pub fn new(storage: &AzureStorage, table: &'static str, pk: &'static str) -> Self {
        TableRecords { storage: storage.clone(), table, pk, _t: PhantomData }
    }
}

#[async_trait(?Send)]
impl<T: Serialize + DeserializeOwned> Records<T> for TableRecords<T> {
    async fn get(&self, key: &str) -> StoreResult<Option<Tagged<T>>> {
        Ok(crate::get(&self.storage.account, self.table, self.pk, key).await?)
    }

    async fn list(&self) -> StoreResult<Vec<Tagged<T>>> {
        let filter = format!("PartitionKey eq {}", literal(self.pk));
        Ok(crate::query_all(&self.storage.account, self.table, &filter).await?)
    }

    async fn insert(&self, key: &str, record: &T) -> StoreResult<()> {
        let s = &self.storage;
        Ok(crate::insert_or_init(&s.account, &s.container, self.table, self.pk, key, record).await?)
    }

    async fn replace(&self, key: &str, record: &T, etag: Option<&str>) -> StoreResult<Option<String>> {
        Ok(crate::replace(&self.storage.account, self.table, self.pk, key, record, etag).await?)
    }

    async fn upsert(&self, key: &str, record: &T) -> StoreResult<()> {
        let s = &self.storage;
        Ok(crate::upsert(&s.account, &s.container, self.table, self.pk, key, record).await?)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        Ok(crate::delete(&self.storage.account, self.table, self.pk, key).await?)
    }

    async fn withdraw(&self, key: &str, waiting: &dyn for<'a> Fn(&'a T) -> bool) -> StoreResult<bool> {
        Ok(crate::withdraw(&self.storage.account, self.table, self.pk, key, waiting).await?)
    }
}

fn enum_text<E: Serialize>(e: E) -> String {
    serde_json::to_value(e).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The Table filter of a history query: day partitions, then `and`-ed field conditions.
pub fn history_filter(q: &HistoryQuery) -> String {
    let mut parts = Vec::new();
    let day = |d: chrono::NaiveDate| literal(&d.format("%Y-%m-%d").to_string());
    if let (Some(f), Some(t)) = (q.from, q.to) {
        if f == t {
            parts.push(format!("PartitionKey eq {}", day(f)));
        }
    }
    if parts.is_empty() {
        parts.extend(q.from.map(|f| format!("PartitionKey ge {}", day(f))));
        parts.extend(q.to.map(|t| format!("PartitionKey le {}", day(t))));
    }
    let any = |field: &str, values: Vec<String>| {
        let alts: Vec<String> = values.iter().map(|v| format!("{field} eq {}", literal(v))).collect();
        if alts.len() == 1 {
            alts[0].clone()
        } else {
            format!("({})", alts.join(" or "))
        }
    };
    if !q.database_ids.is_empty() {
        parts.push(any("database_id", q.database_ids.clone()));
    }
    if !q.statuses.is_empty() {
        parts.push(any("status", q.statuses.iter().map(|s| enum_text(*s)).collect()));
    }
    parts.extend(q.triggered_by.map(|t| format!("triggered_by eq {}", literal(&enum_text(t)))));
    parts.extend(q.engine_type.map(|t| format!("database_type eq {}", literal(t.as_str()))));
    parts.extend(q.blob_name.as_deref().map(|b| format!("blob_name eq {}", literal(b))));
    parts.extend(q.id.as_deref().map(|id| format!("id eq {}", literal(id))));
    parts.extend(q.row_after.as_deref().map(|rk| format!("RowKey gt {}", literal(rk))));
    parts.join(" and ")
}

pub struct AzureHistory(pub AzureStorage);

#[async_trait(?Send)]
impl History for AzureHistory {
    async fn query(&self, q: &HistoryQuery) -> StoreResult<Vec<BackupResult>> {
        let (a, filter) = (&self.0.account, history_filter(q));
        let rows = crate::query_first::<BackupResult>(a, tables::HISTORY, &filter, &[], q.limit).await?;
        Ok(rows.into_iter().map(|(r, _)| r).collect())
    }

    async fn stats(&self, database_id: &str) -> StoreResult<HistoryStats> {
        let (a, filter) = (&self.0.account, format!("database_id eq {}", literal(database_id)));
        // RowKey too, so that an unreadable row is named.
        let select = [StatsFields::NAMES, &["RowKey"]].concat();
        let rows = crate::query_first::<StatsFields>(a, tables::HISTORY, &filter, &select, None).await?;
        let mut stats = HistoryStats::default();
        rows.iter().for_each(|(fields, _)| stats.add(fields));
        Ok(stats)
    }

    async fn fields(&self, q: &HistoryQuery) -> StoreResult<Vec<StatsFields>> {
        let (a, filter) = (&self.0.account, history_filter(q));
        // RowKey too, so that an unreadable row is named.
        let select = [StatsFields::NAMES, &["RowKey"]].concat();
        let rows = crate::query_first::<StatsFields>(a, tables::HISTORY, &filter, &select, None).await?;
        Ok(rows.into_iter().map(|(r, _)| r).collect())
    }

    async fn insert(&self, row: &BackupResult) -> StoreResult<()> {
        let (pk, rk) = dilux_domain::backup::history_keys(row.created_at, &row.id);
        Ok(crate::insert_or_init(&self.0.account, &self.0.container, tables::HISTORY, &pk, &rk, row).await?)
    }

    async fn update(&self, row: &BackupResult) -> StoreResult<()> {
        let (pk, rk) = dilux_domain::backup::history_keys(row.created_at, &row.id);
        crate::replace(&self.0.account, tables::HISTORY, &pk, &rk, row, None).await?;
        Ok(())
    }

    async fn delete(&self, row: &BackupResult) -> StoreResult<()> {
        let (pk, rk) = dilux_domain::backup::history_keys(row.created_at, &row.id);
        Ok(crate::delete(&self.0.account, tables::HISTORY, &pk, &rk).await?)
    }

    async fn withdraw(&self, row: &BackupResult) -> StoreResult<bool> {
        let (pk, rk) = dilux_domain::backup::history_keys(row.created_at, &row.id);
        let waiting = |r: &BackupResult| r.status == dilux_domain::BackupStatus::Pending;
        Ok(crate::withdraw(&self.0.account, tables::HISTORY, &pk, &rk, waiting).await?)
    }
}

/// The Table filter of an audit query.
pub fn audit_filter(q: &AuditQuery) -> String {
    let mut parts = Vec::new();
    match (&q.from_month, &q.to_month) {
        (Some(f), Some(t)) if f == t => parts.push(format!("PartitionKey eq {}", literal(f))),
        (f, t) => {
            parts.extend(f.as_deref().map(|f| format!("PartitionKey ge {}", literal(f))));
            parts.extend(t.as_deref().map(|t| format!("PartitionKey le {}", literal(t))));
        }
    }
    parts.extend(q.fields().into_iter().map(|(k, v)| format!("{k} eq {}", literal(v))));
    parts.join(" and ")
}

pub struct AzureAudit(pub AzureStorage);

#[async_trait(?Send)]
impl dilux_store::Audit for AzureAudit {
    async fn insert(&self, row: &AuditLog) -> StoreResult<()> {
        let (pk, rk) = row.keys();
        Ok(crate::insert_or_init(&self.0.account, &self.0.container, tables::AUDIT, &pk, &rk, row).await?)
    }

    async fn query(&self, q: &AuditQuery) -> StoreResult<Vec<AuditLog>> {
        let rows = crate::query_all::<AuditLog>(&self.0.account, tables::AUDIT, &audit_filter(q)).await?;
        Ok(rows.into_iter().map(|(r, _)| r).collect())
    }

    async fn count_unauthenticated(&self, now: DateTime<Utc>) -> StoreResult<()> {
        let (a, hour) = (&self.0.account, dilux_store::counter_hour(now));
        // A few tries against concurrent counts; a count lost under contention is a count, not an outage.
        for _ in 0..3 {
            let written = match crate::get::<HourCount>(a, tables::COUNTERS, UNAUTHENTICATED, &hour).await? {
                Some((c, etag)) => {
                    let next = HourCount { count: c.count.saturating_add(1) };
                    crate::replace(a, tables::COUNTERS, UNAUTHENTICATED, &hour, &next, Some(&etag)).await.map(|_| ())
                }
                None => {
                    let first = HourCount { count: 1 };
                    let c = &self.0.container;
                    crate::insert_or_init(a, c, tables::COUNTERS, UNAUTHENTICATED, &hour, &first).await
                }
            };
            match written {
                Err(e) if matches!(e.status(), Some(409 | 412)) => continue,
                other => return Ok(other?),
            }
        }
        Ok(())
    }

    async fn unauthenticated_since(&self, since: DateTime<Utc>) -> StoreResult<u64> {
        let filter = format!(
            "PartitionKey eq {} and RowKey ge {}",
            literal(UNAUTHENTICATED),
            literal(&dilux_store::counter_hour(since))
        );
        let rows = match crate::query_all::<HourCount>(&self.0.account, tables::COUNTERS, &filter).await {
            Err(e) if e.status() == Some(404) => vec![], // nothing counted yet: no table
            other => other?,
        };
        Ok(rows.iter().map(|(c, _)| u64::from(c.count)).sum())
    }
}

/// The partition of the requests refused before sign-in.
const UNAUTHENTICATED: &str = "unauthenticated";

pub struct AzureJobs {
    pub storage: AzureStorage,
    pub queue: &'static str,
}

#[async_trait(?Send)]
impl dilux_store::Jobs for AzureJobs {
    async fn put(&self, message: &str) -> StoreResult<()> {
        crate::put_message(&self.storage.account, self.queue, message).await?;
        Ok(())
    }

    async fn depth(&self) -> StoreResult<u64> {
        let a = &self.storage.account;
        let r = crate::send("get queue metadata", queue::get_metadata(a, Utc::now(), self.queue)).await?;
        if r.status == 404 {
            return Ok(0);
        }
        Ok(queue::parse_approximate_count(r).map_err(AzureStoreError::from)?)
    }
}

pub struct AzureFiles(pub AzureStorage);

#[async_trait(?Send)]
impl Files for AzureFiles {
    async fn list(&self, prefix: &str, marker: Option<&str>, max: Option<u32>) -> StoreResult<FilePage> {
        let s = &self.0;
        let req = blob::list_blobs(&s.account, Utc::now(), &s.container, prefix, marker, max);
        let resp = crate::send("list blobs", req).await?;
        if resp.status == 404 {
            return Ok(FilePage::default());
        }
        let page = blob::parse_list_blobs(resp).map_err(AzureStoreError::from)?;
        let items = page
            .items
            .into_iter()
            .filter(|i| !i.name.ends_with(MANIFEST_SUFFIX))
            .map(|i| FileItem { name: i.name, size: i.size, last_modified: i.last_modified })
            .collect();
        Ok(FilePage { items, next_marker: page.next_marker })
    }

    async fn properties(&self, name: &str) -> StoreResult<Option<FileProperties>> {
        let s = &self.0;
        let resp = crate::send("get blob properties", blob::get_properties(&s.account, Utc::now(), &s.container, name))
            .await?;
        if resp.status == 404 {
            return Ok(None);
        }
        let props = blob::parse_properties(resp).map_err(AzureStoreError::from)?;
        let sha256 = props.metadata.iter().find(|(k, _)| k == "sha256").map(|(_, v)| v.clone());
        Ok(Some(FileProperties { size: props.content_length, sha256 }))
    }

    async fn delete(&self, name: &str) -> StoreResult<bool> {
        let s = &self.0;
        let resp = crate::send("delete blob", blob::delete_blob(&s.account, Utc::now(), &s.container, name)).await?;
        let existed = resp.status != 404;
        blob::parse_delete_blob(resp).map_err(AzureStoreError::from)?;
        let sidecar = blob::delete_blob(&s.account, Utc::now(), &s.container, &manifest_blob(name));
        blob::parse_delete_blob(crate::send("delete manifest", sidecar).await?).map_err(AzureStoreError::from)?;
        Ok(existed)
    }

    async fn read_small(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let s = &self.0;
        let resp = crate::send("get blob", blob::get_blob(&s.account, Utc::now(), &s.container, name)).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        Ok(Some(resp.check("get blob").map_err(AzureStoreError::from)?.body))
    }

    fn read_link(&self, name: &str, now: DateTime<Utc>, ttl: chrono::Duration) -> StoreResult<ReadLink> {
        let sas = BlobSas::new(&self.0.account, &self.0.container, name, SasPermissions::Read, now, ttl)
            .map_err(|e| dilux_store::StoreError::Unsupported(format!("download links need an account key: {e}")))?;
        // A link is a bearer credential for the whole database: it never travels in the clear, except to
        // the local emulator.
        if !self.0.account.may_hand_out(&sas.url) {
            let msg = "download links need an https blob endpoint; set DefaultEndpointsProtocol=https (or an https \
                       BlobEndpoint) in storage_connection_string";
            return Err(dilux_store::StoreError::Unsupported(msg.into()));
        }
        Ok(ReadLink { url: sas.url, expires_at: sas.expires_at })
    }

    async fn protection(&self) -> StoreResult<Protection> {
        let s = &self.0;
        let service = crate::send("get blob service properties", blob::get_service_properties(&s.account, Utc::now()));
        let soft_delete_days = blob::parse_soft_delete(service.await?).map_err(AzureStoreError::from)?;
        let mut p = blob::Protection { soft_delete_days, ..Default::default() };
        let container = blob::get_container_properties(&s.account, Utc::now(), &s.container);
        let answer = crate::send("get container properties", container).await?;
        blob::parse_container_protection(answer, &mut p).map_err(AzureStoreError::from)?;
        Ok(Protection {
            soft_delete_days: p.soft_delete_days,
            immutability_policy: p.immutability_policy,
            legal_hold: p.legal_hold,
            version_immutability: p.version_immutability,
        })
    }

    async fn enable_soft_delete(&self, days: u32) -> StoreResult<()> {
        let req = blob::set_soft_delete(&self.0.account, Utc::now(), days);
        let answer = crate::send("set blob service properties", req).await?;
        Ok(blob::parse_set_service_properties(answer).map_err(AzureStoreError::from)?)
    }
}

/// The dumper-host's probe endpoint at `url` (its base), with its shared secret.
pub struct HttpDumper {
    /// Its base URL and token; `None`: not configured (the variables are missing).
    pub endpoint: Option<(String, String)>,
}

impl HttpDumper {
    pub fn new(url: Option<String>, token: Option<String>) -> Self {
        let endpoint = match (url, token) {
            (Some(u), Some(t)) => Some((u.trim_end_matches('/').to_string(), t)),
            _ => None,
        };
        HttpDumper { endpoint }
    }

    fn endpoint(&self) -> Result<&(String, String), ServiceError> {
        self.endpoint.as_ref().ok_or_else(|| {
            ServiceError::NotConfigured("connection tests need the dumper_url and dumper_token variables".into())
        })
    }
}

#[async_trait(?Send)]
impl Dumper for HttpDumper {
    async fn probe(&self, req: &ProbeRequest) -> Result<ProbeResult, ServiceError> {
        let (base, token) = self.endpoint()?;
        let url = &format!("{base}{PROBE_PATH}");
        let body = serde_json::to_vec(req).expect("probe requests serialize");
        let request = spin_sdk::http::Request::post(url, body)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .build();
        let unreachable = |detail: String| ServiceError::Unreachable(format!("the dumper-host at {url} {detail}"));
        let resp: spin_sdk::http::Response =
            spin_sdk::http::send(request).await.map_err(|e| unreachable(format!("could not run the test ({e})")))?;
        if *resp.status() != 200 {
            return Err(unreachable(format!("could not run the test (it answered {})", resp.status())));
        }
        serde_json::from_slice(resp.body()).map_err(|e| unreachable(format!("gave an unreadable answer: {e}")))
    }

    async fn health(&self) -> Result<serde_json::Value, ServiceError> {
        let (base, token) = self.endpoint()?;
        let url = format!("{base}{PROBE_PATH}");
        let request =
            spin_sdk::http::Request::get(url.as_str()).header("authorization", format!("Bearer {token}")).build();
        match spin_sdk::http::send::<_, spin_sdk::http::Response>(request).await {
            Ok(r) if *r.status() == 200 => Ok(serde_json::from_slice(r.body()).unwrap_or_default()),
            Ok(r) => {
                Err(ServiceError::Unreachable(format!("the dumper-host answered {}; check dumper_token", r.status())))
            }
            Err(e) => Err(ServiceError::Unreachable(format!(
                "the dumper-host at {url} does not answer ({e}); backups cannot run"
            ))),
        }
    }

    async fn send(&self, outgoing: &Outgoing) -> Result<SendResult, ServiceError> {
        let (base, token) = self.endpoint()?;
        let url = format!("{base}{NOTIFY_PATH}");
        let body = serde_json::to_vec(outgoing).expect("notifications serialize");
        let request = spin_sdk::http::Request::post(&url, body)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .build();
        let unreachable = |detail: String| ServiceError::Unreachable(format!("the dumper-host at {base} {detail}"));
        let resp: spin_sdk::http::Response = spin_sdk::http::send(request)
            .await
            .map_err(|e| unreachable(format!("could not send the notification ({e})")))?;
        if *resp.status() != 200 {
            return Err(unreachable(format!("could not send the notification (it answered {})", resp.status())));
        }
        serde_json::from_slice(resp.body()).map_err(|e| unreachable(format!("gave an unreadable answer: {e}")))
    }
}

/// Entra ID's published keys, over HTTPS.
pub struct HttpKeySource;

#[async_trait(?Send)]
impl KeySource for HttpKeySource {
    async fn fetch(&self, authority: &str, tenant: &str) -> Result<String, ServiceError> {
        let url = format!("{authority}/{tenant}/discovery/v2.0/keys");
        let resp: spin_sdk::http::Response =
            spin_sdk::http::send(spin_sdk::http::Request::get(url).build()).await.map_err(|e| {
                ServiceError::Unreachable(format!(
                    "cannot fetch Entra ID signing keys: {e}; check allowed_outbound_hosts and entra_authority"
                ))
            })?;
        if *resp.status() != 200 {
            return Err(ServiceError::Unreachable(format!(
                "Entra ID answered {} for the signing keys; check entra_tenant_id",
                resp.status()
            )));
        }
        String::from_utf8(resp.into_body())
            .map_err(|_| ServiceError::Unreachable("Entra ID signing keys are not text".into()))
    }
}

impl AzureStorage {
    /// Every store over this account, with the dumper-host at `dumper`.
    pub fn stores(&self, dumper: HttpDumper) -> Stores {
        use dilux_domain::schedule::TICK_PK;
        Stores {
            engines: Box::new(TableRecords::new(self, tables::ENGINES, tables::ENGINE_PK)),
            databases: Box::new(TableRecords::new(self, tables::DATABASES, tables::DATABASE_PK)),
            policies: Box::new(TableRecords::new(self, tables::POLICIES, "policy")),
            users: Box::new(TableRecords::new(self, tables::USERS, "user")),
            access_requests: Box::new(TableRecords::new(self, tables::ACCESS_REQUESTS, "request")),
            settings: Box::new(TableRecords::new(self, tables::SETTINGS, "settings")),
            preferences: Box::new(TableRecords::new(self, tables::SETTINGS, "preferences")),
            signing_keys: Box::new(TableRecords::new(self, tables::AUTH_CACHE, "jwks")),
            schedule: Box::new(TableRecords::new(self, tables::SCHEDULE, "state")),
            drills: Box::new(TableRecords::new(self, tables::SCHEDULE, dilux_domain::drill::DRILL_PK)),
            ticks: Box::new(TableRecords::new(self, tables::SCHEDULE, TICK_PK)),
            history: Box::new(AzureHistory(self.clone())),
            restores: Box::new(TableRecords::new(self, tables::RESTORES, dilux_domain::restore::RESTORE_PK)),
            audit: Box::new(AzureAudit(self.clone())),
            jobs: Box::new(AzureJobs { storage: self.clone(), queue: dilux_domain::JOBS_QUEUE }),
            restore_jobs: Box::new(AzureJobs {
                storage: self.clone(),
                queue: dilux_domain::restore::RESTORE_JOBS_QUEUE,
            }),
            files: Box::new(AzureFiles(self.clone())),
            channels: Box::new(TableRecords::new(self, tables::NOTIFICATIONS, "channel")),
            deliveries: Box::new(TableRecords::new(self, tables::NOTIFICATIONS, "delivery")),
            incidents: Box::new(TableRecords::new(self, tables::NOTIFICATIONS, "incident")),
            notify_cursor: Box::new(TableRecords::new(self, tables::NOTIFICATIONS, "cursor")),
            dumper: Box::new(dumper),
            keys: Box::new(HttpKeySource),
        }
    }
}
