//! In-memory implementations of `dilux-store`'s traits, and fake services (the dumper-host's probe,
//! the identity provider's keys), so handlers are tested natively in seconds. Every store is a cheap
//! handle on shared state: a test keeps a [`Memory`] to arrange data and to look at what a handler
//! wrote, and gives the handler [`Memory::stores`].
//!
//! Conditional writes behave as Azure Table's do: each write gets a new ETag, a stale one is
//! [`StoreError::Changed`], an insert of an existing key [`StoreError::Conflict`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dilux_domain::audit::AuditLog;
use dilux_domain::manifest::MANIFEST_SUFFIX;
use dilux_domain::notify::{Outgoing, SendResult};
use dilux_domain::probe::{ProbeRequest, ProbeResult};
use dilux_domain::BackupResult;
use dilux_store::{
    Audit, AuditQuery, Dumper, FileItem, FilePage, FileProperties, Files, History, HistoryQuery, Jobs, KeySource,
    Protection, ReadLink, Records, ServiceError, StoreError, StoreResult, Stores, Tagged,
};

type Shared<T> = Rc<RefCell<T>>;

/// Records of one kind, by key, each with a version.
pub struct MemRecords<T> {
    rows: Shared<BTreeMap<String, (T, u64)>>,
    version: Shared<u64>,
    what: &'static str,
}

impl<T> Clone for MemRecords<T> {
    fn clone(&self) -> Self {
        MemRecords { rows: self.rows.clone(), version: self.version.clone(), what: self.what }
    }
}

fn etag(v: u64) -> String {
    format!("W/\"{v}\"")
}

impl<T: Clone> MemRecords<T> {
    fn new(what: &'static str, version: &Shared<u64>) -> Self {
        MemRecords { rows: Rc::default(), version: version.clone(), what }
    }

    fn next(&self) -> u64 {
        let mut v = self.version.borrow_mut();
        *v += 1;
        *v
    }

    /// Puts a record in place (arranging a test), whatever was there.
    pub fn put(&self, key: &str, record: T) {
        let v = self.next();
        self.rows.borrow_mut().insert(key.to_string(), (record, v));
    }

    /// The record under `key`, if any.
    pub fn read(&self, key: &str) -> Option<T> {
        self.rows.borrow().get(key).map(|(r, _)| r.clone())
    }

    /// Removes a record behind the handlers' back (something deleted meanwhile).
    pub fn remove(&self, key: &str) {
        self.rows.borrow_mut().remove(key);
    }

    pub fn all(&self) -> Vec<T> {
        self.rows.borrow().values().map(|(r, _)| r.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.rows.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait(?Send)]
impl<T: Clone> Records<T> for MemRecords<T> {
    async fn get(&self, key: &str) -> StoreResult<Option<Tagged<T>>> {
        Ok(self.rows.borrow().get(key).map(|(r, v)| (r.clone(), etag(*v))))
    }

    async fn list(&self) -> StoreResult<Vec<Tagged<T>>> {
        Ok(self.rows.borrow().values().map(|(r, v)| (r.clone(), etag(*v))).collect())
    }

    async fn insert(&self, key: &str, record: &T) -> StoreResult<()> {
        if self.rows.borrow().contains_key(key) {
            return Err(StoreError::Conflict { what: format!("{} `{key}`", self.what) });
        }
        self.put(key, record.clone());
        Ok(())
    }

    async fn replace(&self, key: &str, record: &T, tag: Option<&str>) -> StoreResult<Option<String>> {
        let current = self.rows.borrow().get(key).map(|(_, v)| *v);
        match (current, tag) {
            (None, _) => Err(StoreError::NotFound { what: format!("{} `{key}`", self.what) }),
            (Some(v), Some(t)) if t != "*" && etag(v) != t => {
                Err(StoreError::Changed { what: format!("{} `{key}`", self.what) })
            }
            _ => {
                let v = self.next();
                self.rows.borrow_mut().insert(key.to_string(), (record.clone(), v));
                Ok(Some(etag(v)))
            }
        }
    }

    async fn upsert(&self, key: &str, record: &T) -> StoreResult<()> {
        self.put(key, record.clone());
        Ok(())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.rows.borrow_mut().remove(key);
        Ok(())
    }

    async fn withdraw(&self, key: &str, waiting: &dyn for<'a> Fn(&'a T) -> bool) -> StoreResult<bool> {
        let mut rows = self.rows.borrow_mut();
        if rows.get(key).is_some_and(|(r, _)| !waiting(r)) {
            return Ok(false);
        }
        rows.remove(key);
        Ok(true)
    }
}

/// The history, by backup id.
#[derive(Clone, Default)]
pub struct MemHistory(pub Shared<BTreeMap<String, BackupResult>>, pub Shared<Vec<HistoryQuery>>);

impl MemHistory {
    /// The queries asked so far, and forgets them.
    pub fn take_queries(&self) -> Vec<HistoryQuery> {
        std::mem::take(&mut *self.1.borrow_mut())
    }

    pub fn all(&self) -> Vec<BackupResult> {
        self.0.borrow().values().cloned().collect()
    }

    pub fn put(&self, row: BackupResult) {
        self.0.borrow_mut().insert(row.id.clone(), row);
    }
}

#[async_trait(?Send)]
impl History for MemHistory {
    async fn query(&self, q: &HistoryQuery) -> StoreResult<Vec<BackupResult>> {
        self.1.borrow_mut().push(q.clone());
        let mut rows: Vec<BackupResult> = self.0.borrow().values().filter(|r| q.matches(r)).cloned().collect();
        // Table order: by partition, then RowKey.
        rows.sort_by_key(|r| dilux_domain::backup::history_keys(r.created_at, &r.id));
        rows.truncate(q.limit.unwrap_or(usize::MAX));
        Ok(rows)
    }

    async fn stats(&self, database_id: &str) -> StoreResult<dilux_domain::backup::HistoryStats> {
        let mut stats = dilux_domain::backup::HistoryStats::default();
        for r in self.0.borrow().values().filter(|r| r.database_id == database_id) {
            stats.add(&r.into());
        }
        Ok(stats)
    }

    async fn fields(&self, q: &HistoryQuery) -> StoreResult<Vec<dilux_domain::backup::StatsFields>> {
        self.1.borrow_mut().push(q.clone());
        Ok(self.0.borrow().values().filter(|r| q.matches(r)).map(Into::into).collect())
    }

    async fn insert(&self, row: &BackupResult) -> StoreResult<()> {
        if self.0.borrow().contains_key(&row.id) {
            return Err(StoreError::Conflict { what: format!("backup `{}`", row.id) });
        }
        self.put(row.clone());
        Ok(())
    }

    async fn update(&self, row: &BackupResult) -> StoreResult<()> {
        self.put(row.clone());
        Ok(())
    }

    async fn delete(&self, row: &BackupResult) -> StoreResult<()> {
        self.0.borrow_mut().remove(&row.id);
        Ok(())
    }

    async fn withdraw(&self, row: &BackupResult) -> StoreResult<bool> {
        let mut rows = self.0.borrow_mut();
        if rows.get(&row.id).is_some_and(|r| r.status != dilux_domain::BackupStatus::Pending) {
            return Ok(false);
        }
        rows.remove(&row.id);
        Ok(true)
    }
}

/// The audit trail, in insertion order.
#[derive(Clone, Default)]
pub struct MemAudit(pub Shared<Vec<AuditLog>>, pub Shared<std::collections::BTreeMap<String, u64>>);

impl MemAudit {
    pub fn all(&self) -> Vec<AuditLog> {
        self.0.borrow().clone()
    }
}

#[async_trait(?Send)]
impl Audit for MemAudit {
    async fn insert(&self, row: &AuditLog) -> StoreResult<()> {
        self.0.borrow_mut().push(row.clone());
        Ok(())
    }

    async fn query(&self, q: &AuditQuery) -> StoreResult<Vec<AuditLog>> {
        Ok(self.0.borrow().iter().filter(|a| q.matches(a)).cloned().collect())
    }

    async fn count_unauthenticated(&self, now: DateTime<Utc>) -> StoreResult<()> {
        *self.1.borrow_mut().entry(dilux_store::counter_hour(now)).or_insert(0) += 1;
        Ok(())
    }

    async fn unauthenticated_since(&self, since: DateTime<Utc>) -> StoreResult<u64> {
        let from = dilux_store::counter_hour(since);
        Ok(self.1.borrow().iter().filter(|(h, _)| **h >= from).map(|(_, n)| *n).sum())
    }
}

/// The jobs queue; `fail` makes every put fail (a queue outage); `lose_answers` delivers each message
/// and then fails the put as a lost answer does; `on_delivery` runs as a message arrives (a worker that
/// takes the job at once).
#[derive(Clone, Default)]
pub struct MemJobs {
    pub messages: Shared<Vec<String>>,
    pub fail: Shared<bool>,
    pub lose_answers: Shared<bool>,
    #[allow(clippy::type_complexity)]
    pub on_delivery: Shared<Option<Box<dyn Fn(&str)>>>,
}

impl MemJobs {
    pub fn messages(&self) -> Vec<String> {
        self.messages.borrow().clone()
    }
}

#[async_trait(?Send)]
impl Jobs for MemJobs {
    async fn put(&self, message: &str) -> StoreResult<()> {
        if *self.fail.borrow() {
            return Err(StoreError::Unavailable { operation: "put message".into(), detail: "queue is down".into() });
        }
        self.messages.borrow_mut().push(message.to_string());
        if let Some(worker) = &*self.on_delivery.borrow() {
            worker(message);
        }
        if *self.lose_answers.borrow() {
            let detail = "the connection closed before the answer: the message may have been queued".into();
            return Err(StoreError::Unavailable { operation: "put message".into(), detail });
        }
        Ok(())
    }

    async fn depth(&self) -> StoreResult<u64> {
        Ok(self.messages.borrow().len() as u64)
    }
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemFile {
    pub size: u64,
    pub sha256: Option<String>,
    pub content: Vec<u8>,
}

/// The backup files; `can_sign: false` is storage reached without an account key; `protection` is the
/// account's soft delete and the container's immutability.
#[derive(Clone)]
pub struct MemFiles {
    pub files: Shared<BTreeMap<String, MemFile>>,
    pub can_sign: Shared<bool>,
    pub protection: Shared<Protection>,
}

impl Default for MemFiles {
    fn default() -> Self {
        MemFiles { files: Rc::default(), can_sign: Rc::new(RefCell::new(true)), protection: Rc::default() }
    }
}

impl MemFiles {
    pub fn put(&self, name: &str, size: u64, sha256: Option<&str>) {
        let file = MemFile { size, sha256: sha256.map(str::to_string), content: vec![] };
        self.files.borrow_mut().insert(name.to_string(), file);
    }

    /// A small file with its content (a manifest).
    pub fn put_content(&self, name: &str, content: &[u8]) {
        let file = MemFile { size: content.len() as u64, sha256: None, content: content.to_vec() };
        self.files.borrow_mut().insert(name.to_string(), file);
    }

    pub fn names(&self) -> Vec<String> {
        self.files.borrow().keys().cloned().collect()
    }
}

#[async_trait(?Send)]
impl Files for MemFiles {
    async fn list(&self, prefix: &str, marker: Option<&str>, max: Option<u32>) -> StoreResult<FilePage> {
        let files = self.files.borrow();
        let mut names = files.iter().filter(|(n, _)| {
            n.starts_with(prefix) && marker.is_none_or(|m| n.as_str() >= m) && !n.ends_with(MANIFEST_SUFFIX)
        });
        let max = max.unwrap_or(5000) as usize;
        let items: Vec<FileItem> = names
            .by_ref()
            .take(max)
            .map(|(n, f)| FileItem {
                name: n.clone(),
                size: f.size,
                last_modified: "Mon, 30 Nov 2026 00:00:00 GMT".into(),
            })
            .collect();
        let next_marker = names.next().map(|(n, _)| n.clone());
        Ok(FilePage { items, next_marker })
    }

    async fn properties(&self, name: &str) -> StoreResult<Option<FileProperties>> {
        Ok(self.files.borrow().get(name).map(|f| FileProperties { size: f.size, sha256: f.sha256.clone() }))
    }

    async fn delete(&self, name: &str) -> StoreResult<bool> {
        self.files.borrow_mut().remove(&dilux_domain::manifest::manifest_blob(name));
        Ok(self.files.borrow_mut().remove(name).is_some())
    }

    async fn read_small(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.files.borrow().get(name).map(|f| f.content.clone()))
    }

    fn read_link(&self, name: &str, now: DateTime<Utc>, ttl: chrono::Duration) -> StoreResult<ReadLink> {
        if !*self.can_sign.borrow() {
            return Err(StoreError::Unsupported("download links need an account key".into()));
        }
        Ok(ReadLink { url: format!("https://memory.invalid/backups/{name}?sig=test"), expires_at: now + ttl })
    }

    async fn protection(&self) -> StoreResult<Protection> {
        Ok(self.protection.borrow().clone())
    }

    async fn enable_soft_delete(&self, days: u32) -> StoreResult<()> {
        self.protection.borrow_mut().soft_delete_days = Some(days);
        Ok(())
    }
}

/// The dumper-host's probe: answers `answer` (or `down`), and remembers what it was asked.
#[derive(Clone)]
pub struct FakeDumper {
    pub answer: Shared<ProbeResult>,
    pub down: Shared<bool>,
    pub asked: Shared<Vec<ProbeRequest>>,
    /// Every notification it was given to send.
    pub sent: Shared<Vec<Outgoing>>,
    /// Destinations (URL prefixes or SMTP hosts) that refuse what is sent to them.
    pub refusing: Shared<Vec<String>>,
}

impl Default for FakeDumper {
    fn default() -> Self {
        let answer = ProbeResult {
            success: true,
            message: "connected".into(),
            server_version: Some("15.8".into()),
            error_type: None,
            duration_ms: 3,
            databases: vec![],
        };
        FakeDumper {
            answer: Rc::new(RefCell::new(answer)),
            down: Rc::default(),
            asked: Rc::default(),
            sent: Rc::default(),
            refusing: Rc::default(),
        }
    }
}

impl FakeDumper {
    pub fn asked(&self) -> Vec<ProbeRequest> {
        self.asked.borrow().clone()
    }
}

#[async_trait(?Send)]
impl Dumper for FakeDumper {
    async fn probe(&self, request: &ProbeRequest) -> Result<ProbeResult, ServiceError> {
        self.asked.borrow_mut().push(request.clone());
        if *self.down.borrow() {
            return Err(ServiceError::Unreachable("the dumper-host at memory:// does not answer".into()));
        }
        Ok(self.answer.borrow().clone())
    }

    async fn health(&self) -> Result<serde_json::Value, ServiceError> {
        if *self.down.borrow() {
            return Err(ServiceError::Unreachable("the dumper-host does not answer; backups cannot run".into()));
        }
        Ok(serde_json::json!({ "tools": { "pg_dump": ["15"], "mariadb-dump": true } }))
    }

    async fn send(&self, outgoing: &Outgoing) -> Result<SendResult, ServiceError> {
        if *self.down.borrow() {
            return Err(ServiceError::Unreachable("the dumper-host does not answer".into()));
        }
        self.sent.borrow_mut().push(outgoing.clone());
        let to = match outgoing {
            Outgoing::Http { url, .. } => url.clone(),
            Outgoing::Smtp { host, .. } => host.clone(),
            Outgoing::Plugin { plugin, .. } => format!("plugin:{plugin}"),
        };
        let refused = self.refusing.borrow().iter().any(|r| to.starts_with(r.as_str()));
        let (ok, status) = if refused { (false, 500) } else { (true, 200) };
        Ok(SendResult { ok, status: Some(status), message: if ok { "ok" } else { "refused" }.into(), duration_ms: 1 })
    }
}

/// An identity provider publishing `jwks` (none: unreachable).
#[derive(Clone, Default)]
pub struct FakeKeys {
    pub jwks: Shared<Option<String>>,
    pub fetches: Shared<usize>,
}

#[async_trait(?Send)]
impl KeySource for FakeKeys {
    async fn fetch(&self, _authority: &str, _tenant: &str) -> Result<String, ServiceError> {
        *self.fetches.borrow_mut() += 1;
        self.jwks.borrow().clone().ok_or_else(|| ServiceError::Unreachable("the identity provider is down".into()))
    }
}

/// One app's worth of in-memory state.
#[derive(Clone)]
pub struct Memory {
    pub engines: MemRecords<dilux_domain::Engine>,
    pub databases: MemRecords<dilux_domain::Database>,
    pub policies: MemRecords<dilux_domain::policy::PolicyRow>,
    pub users: MemRecords<dilux_domain::user::User>,
    pub access_requests: MemRecords<dilux_domain::settings::AccessRequest>,
    pub settings: MemRecords<dilux_domain::settings::AppSettings>,
    pub preferences: MemRecords<dilux_domain::settings::Preferences>,
    pub signing_keys: MemRecords<dilux_domain::settings::SigningKeys>,
    pub schedule: MemRecords<dilux_domain::schedule::ScheduleState>,
    pub drills: MemRecords<dilux_domain::drill::DrillState>,
    pub ticks: MemRecords<dilux_domain::schedule::TickRecord>,
    pub history: MemHistory,
    pub restores: MemRecords<dilux_domain::restore::RestoreResult>,
    pub audit: MemAudit,
    pub jobs: MemJobs,
    pub restore_jobs: MemJobs,
    pub files: MemFiles,
    pub channels: MemRecords<dilux_domain::notify::Channel>,
    pub deliveries: MemRecords<dilux_domain::notify::Delivery>,
    pub incidents: MemRecords<dilux_domain::notify::Incident>,
    pub notify_cursor: MemRecords<dilux_domain::notify::NotifyCursor>,
    pub dumper: FakeDumper,
    pub keys: FakeKeys,
}

impl Default for Memory {
    fn default() -> Self {
        let v: Shared<u64> = Rc::default();
        Memory {
            engines: MemRecords::new("engine", &v),
            databases: MemRecords::new("database", &v),
            policies: MemRecords::new("policy", &v),
            users: MemRecords::new("user", &v),
            access_requests: MemRecords::new("access request", &v),
            settings: MemRecords::new("settings", &v),
            preferences: MemRecords::new("preferences", &v),
            signing_keys: MemRecords::new("signing keys", &v),
            schedule: MemRecords::new("schedule state", &v),
            drills: MemRecords::new("drill state", &v),
            ticks: MemRecords::new("tick", &v),
            history: MemHistory::default(),
            restores: MemRecords::new("restore", &v),
            audit: MemAudit::default(),
            jobs: MemJobs::default(),
            restore_jobs: MemJobs::default(),
            files: MemFiles::default(),
            channels: MemRecords::new("channel", &v),
            deliveries: MemRecords::new("delivery", &v),
            incidents: MemRecords::new("incident", &v),
            notify_cursor: MemRecords::new("notify cursor", &v),
            dumper: FakeDumper::default(),
            keys: FakeKeys::default(),
        }
    }
}

impl Memory {
    /// Stores over this state, for a handler.
    pub fn stores(&self) -> Stores {
        Stores {
            engines: Box::new(self.engines.clone()),
            databases: Box::new(self.databases.clone()),
            policies: Box::new(self.policies.clone()),
            users: Box::new(self.users.clone()),
            access_requests: Box::new(self.access_requests.clone()),
            settings: Box::new(self.settings.clone()),
            preferences: Box::new(self.preferences.clone()),
            signing_keys: Box::new(self.signing_keys.clone()),
            schedule: Box::new(self.schedule.clone()),
            drills: Box::new(self.drills.clone()),
            ticks: Box::new(self.ticks.clone()),
            history: Box::new(self.history.clone()),
            restores: Box::new(self.restores.clone()),
            audit: Box::new(self.audit.clone()),
            jobs: Box::new(self.jobs.clone()),
            restore_jobs: Box::new(self.restore_jobs.clone()),
            files: Box::new(self.files.clone()),
            channels: Box::new(self.channels.clone()),
            deliveries: Box::new(self.deliveries.clone()),
            incidents: Box::new(self.incidents.clone()),
            notify_cursor: Box::new(self.notify_cursor.clone()),
            dumper: Box::new(self.dumper.clone()),
            keys: Box::new(self.keys.clone()),
        }
    }
}
