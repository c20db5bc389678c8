//! Typed queries over the history and the audit trail. `matches` is the rule; the Azure store turns
//! the same fields into a Table filter over the same partitions.

use chrono::NaiveDate;
use dilux_domain::audit::AuditLog;
use dilux_domain::{BackupResult, BackupStatus, EngineType, TriggeredBy};

/// History rows by day partition (`from`..=`to`, UTC) and fields; an empty list matches anything.
/// Rows come in key order — day partitions oldest first, within a day newest first — and `limit`
/// keeps the first ones: the newest of one day, when `from` = `to`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub database_ids: Vec<String>,
    pub statuses: Vec<BackupStatus>,
    pub triggered_by: Option<TriggeredBy>,
    pub engine_type: Option<EngineType>,
    pub blob_name: Option<String>,
    pub id: Option<String>,
    /// Only rows whose RowKey sorts after this one (older rows of the same day): a cursor.
    pub row_after: Option<String>,
    pub limit: Option<usize>,
}

impl HistoryQuery {
    /// Every row of one database.
    pub fn database(id: &str) -> Self {
        HistoryQuery { database_ids: vec![id.to_string()], ..Default::default() }
    }

    pub fn matches(&self, r: &BackupResult) -> bool {
        let day = r.created_at.date_naive();
        self.from.is_none_or(|f| day >= f)
            && self.to.is_none_or(|t| day <= t)
            && (self.database_ids.is_empty() || self.database_ids.contains(&r.database_id))
            && (self.statuses.is_empty() || self.statuses.contains(&r.status))
            && self.triggered_by.is_none_or(|t| r.triggered_by == t)
            && self.engine_type.is_none_or(|t| r.database_type == t)
            && self.blob_name.as_ref().is_none_or(|b| &r.blob_name == b)
            && self.id.as_ref().is_none_or(|id| &r.id == id)
            && self
                .row_after
                .as_ref()
                .is_none_or(|after| &dilux_domain::backup::history_keys(r.created_at, &r.id).1 > after)
    }
}

/// Audit rows by month partition (`YYYYMM`, `from_month`..=`to_month`) and exact field values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub from_month: Option<String>,
    pub to_month: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub user_id: Option<String>,
    pub status: Option<String>,
}

impl AuditQuery {
    /// The field filters as (Table property, value) pairs.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("user_id", &self.user_id),
            ("status", &self.status),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    pub fn matches(&self, a: &AuditLog) -> bool {
        let (month, _) = a.keys();
        let value = |field: &str| match field {
            "action" => &a.action,
            "resource_type" => &a.resource_type,
            "resource_id" => &a.resource_id,
            "user_id" => &a.user_id,
            _ => &a.status,
        };
        self.from_month.as_ref().is_none_or(|f| &month >= f)
            && self.to_month.as_ref().is_none_or(|t| &month <= t)
            && self.fields().iter().all(|(k, v)| value(k) == v)
    }
}
