//! Audit rows: who did what to which resource, and how it went. Keyed like history (month partition,
//! inverted ticks) so the newest sort first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditLog {
    pub id: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub user_id: String,
    #[serde(default)]
    pub user_email: String,
    #[serde(default)]
    pub ip_address: String,
    pub status: String,
    /// JSON with action-specific fields.
    pub details: String,
    pub timestamp: DateTime<Utc>,
}

impl AuditLog {
    /// An action taken by the system itself (scheduler, retention).
    pub fn system(
        action: &str,
        resource_type: &str,
        resource_id: &str,
        resource_name: &str,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Self {
        AuditLog {
            id: uuid::Uuid::new_v4().to_string(),
            action: action.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            resource_name: resource_name.into(),
            user_id: "system".into(),
            user_email: String::new(),
            ip_address: String::new(),
            status: "success".into(),
            details: details.to_string(),
            timestamp: now,
        }
    }

    /// (PartitionKey `YYYYMM`, RowKey inverted ticks + id).
    pub fn keys(&self) -> (String, String) {
        let (_, rk) = crate::backup::history_keys(self.timestamp, &self.id);
        (self.timestamp.format("%Y%m").to_string(), rk)
    }
}

pub const BACKUP_DELETED_RETENTION: &str = "backup_deleted_retention";
