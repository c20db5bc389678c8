//! Restore drills: what the drill tick remembers per database (one Table row, under ETags so two ticks
//! never both queue), when a drill is due, and when the lack of a good one is an alert.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::VerifyPolicy;
use crate::restore::{RestoreResult, Verification, VerificationResult};
use crate::BackupResult;

/// The drill rows' partition in the schedule table.
pub const DRILL_PK: &str = "drill";

/// Time a due drill is given to run before "no successful drill within its window" is an alert.
pub const GRACE: Duration = Duration::hours(6);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillState {
    pub database_id: String,
    /// The drill in flight (a restore id), if any.
    #[serde(default)]
    pub active_restore_id: Option<String>,
    #[serde(default)]
    pub active_backup_id: Option<String>,
    #[serde(default)]
    pub last_started_at: Option<DateTime<Utc>>,
    /// The backup the last finished drill restored.
    #[serde(default)]
    pub last_backup_id: Option<String>,
    #[serde(default)]
    pub last_result: Option<VerificationResult>,
    #[serde(default)]
    pub last_finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_summary: Option<String>,
    /// When a drill last passed, and how long its restore took then (the measured RTO).
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success_rto_seconds: Option<f64>,
}

impl DrillState {
    pub fn new(database_id: &str) -> Self {
        DrillState { database_id: database_id.into(), ..Default::default() }
    }

    pub fn start(&mut self, restore_id: &str, backup_id: &str, now: DateTime<Utc>) {
        self.active_restore_id = Some(restore_id.into());
        self.active_backup_id = Some(backup_id.into());
        self.last_started_at = Some(now);
    }

    /// Folds in the finished drill (`None`: its row is gone — it was never queued — so it counts as not
    /// run, and the next one is due as if it had not been tried).
    pub fn finish(&mut self, row: Option<&RestoreResult>, now: DateTime<Utc>) {
        let backup = self.active_backup_id.take();
        self.active_restore_id = None;
        let Some(row) = row else {
            self.last_started_at = self.last_finished_at;
            return;
        };
        let v = row
            .verification
            .clone()
            .unwrap_or_else(|| Verification::of_failure(row, row.error_message.as_deref().unwrap_or("unknown"), now));
        self.last_backup_id = backup;
        self.last_result = Some(v.result);
        self.last_finished_at = Some(row.completed_at.unwrap_or(now));
        self.last_summary = Some(v.summary.clone());
        if v.result != VerificationResult::Failed {
            self.last_success_at = self.last_finished_at;
            self.last_success_rto_seconds = v.restore_seconds;
        }
    }
}

/// Whether a drill of `newest` (the database's newest completed backup) is due now.
pub fn drill_due(policy: &VerifyPolicy, state: &DrillState, newest: &BackupResult, now: DateTime<Utc>) -> bool {
    if state.active_restore_id.is_some() {
        return false;
    }
    let by_time = policy
        .every_days
        .is_some_and(|d| state.last_started_at.is_none_or(|t| now - t >= Duration::days(i64::from(d))));
    let drilled = [state.last_backup_id.as_deref(), state.active_backup_id.as_deref()].contains(&Some(&newest.id));
    by_time || (policy.after_each_backup && !drilled)
}

/// Why a database's drills need attention, if they do: the last drill failed, or none passed within
/// the window (`every_days` plus [`GRACE`] for the drill to run).
pub fn drill_alert(policy: &VerifyPolicy, state: Option<&DrillState>, now: DateTime<Utc>) -> Option<String> {
    if !policy.enabled() {
        return None;
    }
    if let Some(s) = state.filter(|s| s.last_result == Some(VerificationResult::Failed)) {
        return Some(format!("the last restore drill failed: {}", s.last_summary.as_deref().unwrap_or("")));
    }
    let days = policy.every_days?;
    let window = Duration::days(i64::from(days)) + GRACE;
    match (state.and_then(|s| s.last_success_at), state.and_then(|s| s.last_started_at)) {
        (Some(t), _) if now - t <= window => None,
        (Some(t), _) => {
            Some(format!("no successful restore drill for {} days (every {days} days asked)", (now - t).num_days()))
        }
        // The first drill is under way.
        (None, Some(t)) if now - t <= window => None,
        _ => Some(format!("no successful restore drill yet (every {days} days asked)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::RestorePurpose;
    use chrono::TimeZone;

    fn backup(id: &str) -> BackupResult {
        let job = crate::BackupJob::new(
            "db1",
            crate::EngineType::Postgresql,
            crate::TriggeredBy::Scheduler,
            vec![crate::BackupTier::Daily],
            Utc::now(),
        );
        BackupResult { id: id.into(), ..BackupResult::pending(&job, "shop", "Shop", "e1") }
    }

    #[test]
    fn drills_are_due_every_n_days_and_after_each_new_backup() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let weekly = VerifyPolicy { every_days: Some(7), ..Default::default() };
        let mut s = DrillState::new("db1");
        assert!(drill_due(&weekly, &s, &backup("b1"), now), "never drilled");
        s.start("r1", "b1", now);
        assert!(!drill_due(&weekly, &s, &backup("b2"), now + Duration::days(8)), "one in flight");
        s.active_restore_id = None;
        assert!(!drill_due(&weekly, &s, &backup("b2"), now + Duration::days(6)));
        assert!(drill_due(&weekly, &s, &backup("b2"), now + Duration::days(7)));
        let mut lost = s.clone();
        lost.start("r9", "b2", now + Duration::days(7));
        lost.finish(None, now + Duration::days(7));
        assert!(drill_due(&weekly, &lost, &backup("b2"), now + Duration::days(7)), "a drill never queued is due again");
        let each = VerifyPolicy { after_each_backup: true, ..Default::default() };
        s.last_backup_id = Some("b1".into());
        assert!(!drill_due(&each, &s, &backup("b1"), now));
        assert!(drill_due(&each, &s, &backup("b2"), now));
    }

    #[test]
    fn a_failed_or_missing_drill_raises_the_alert() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let weekly = VerifyPolicy { every_days: Some(7), ..Default::default() };
        assert!(drill_alert(&VerifyPolicy::default(), None, now).is_none(), "drills not asked for");
        assert!(drill_alert(&weekly, None, now).unwrap().contains("no successful restore drill yet"));
        let mut s = DrillState::new("db1");
        s.start("r1", "b1", now);
        assert!(drill_alert(&weekly, Some(&s), now).is_none(), "the first one is running");
        let engine: crate::Engine = serde_json::from_value(serde_json::json!({
            "id": "e1", "name": "pg", "engine_type": "postgresql", "host": "h", "port": 5432,
            "auth_method": "user_password", "created_at": now, "updated_at": now
        }))
        .unwrap();
        let mut row = RestoreResult::queued(
            &backup("b1"),
            &engine,
            "shop_drill",
            Default::default(),
            RestorePurpose::Drill,
            "scheduler",
            now,
        );
        row.fail(now, crate::ErrorClass::Corrupt, "SHA-256 mismatch");
        s.finish(Some(&row), now);
        assert!(drill_alert(&weekly, Some(&s), now).unwrap().contains("SHA-256 mismatch"));
        row.verification = Some(Verification::of_restore(&row, None, 3.5, "16.4", now));
        s.start("r2", "b1", now);
        s.finish(Some(&row), now);
        assert_eq!((s.last_success_at, s.last_success_rto_seconds), (Some(now), Some(3.5)));
        assert!(drill_alert(&weekly, Some(&s), now + Duration::days(7)).is_none());
        assert!(drill_alert(&weekly, Some(&s), now + Duration::days(8)).unwrap().contains("for 8 days"));
    }
}
