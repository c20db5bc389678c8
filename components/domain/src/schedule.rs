//! What the scheduler remembers per database (one Table row each): the job it has in flight, and per
//! tier the last success and last attempt. With ETags on this row, two ticks can never both queue.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::TierHistory;
use crate::{BackupJob, BackupTier};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub database_id: String,
    /// The scheduled job in flight (its history row's keys), if any.
    #[serde(default)]
    pub active_job_id: Option<String>,
    #[serde(default)]
    pub active_history_pk: Option<String>,
    #[serde(default)]
    pub active_history_rk: Option<String>,
    #[serde(default, with = "crate::entity::comma_list")]
    pub active_tiers: Vec<BackupTier>,
    #[serde(default)]
    pub active_since: Option<DateTime<Utc>>,
    // Table storage has no maps: one column per tier and fact.
    #[serde(default)]
    pub last_success_hourly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success_daily: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success_weekly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success_monthly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success_yearly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_attempt_hourly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_attempt_daily: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_attempt_weekly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_attempt_monthly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_attempt_yearly: Option<DateTime<Utc>>,
    #[serde(default)]
    pub consecutive_failures: u32,
}

impl ScheduleState {
    pub fn new(database_id: &str) -> Self {
        ScheduleState { database_id: database_id.into(), ..Default::default() }
    }

    fn slots(&mut self, t: BackupTier) -> (&mut Option<DateTime<Utc>>, &mut Option<DateTime<Utc>>) {
        match t {
            BackupTier::Hourly => (&mut self.last_success_hourly, &mut self.last_attempt_hourly),
            BackupTier::Daily => (&mut self.last_success_daily, &mut self.last_attempt_daily),
            BackupTier::Weekly => (&mut self.last_success_weekly, &mut self.last_attempt_weekly),
            BackupTier::Monthly => (&mut self.last_success_monthly, &mut self.last_attempt_monthly),
            BackupTier::Yearly => (&mut self.last_success_yearly, &mut self.last_attempt_yearly),
        }
    }

    pub fn history(&self) -> BTreeMap<BackupTier, TierHistory> {
        let mut me = self.clone();
        crate::policy::TIERS
            .iter()
            .map(|t| {
                let (s, a) = me.slots(*t);
                (*t, TierHistory { last_success: *s, last_attempt: *a })
            })
            .collect()
    }

    /// The newest success of any tier.
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.history().values().filter_map(|h| h.last_success).max()
    }

    pub fn has_active_job(&self) -> bool {
        self.active_job_id.is_some()
    }

    /// Records that `job` was queued for its tiers.
    pub fn start(&mut self, job: &BackupJob) {
        self.active_job_id = Some(job.id.clone());
        self.active_history_pk = Some(job.history_pk.clone());
        self.active_history_rk = Some(job.history_rk.clone());
        self.active_tiers = job.tiers.clone();
        self.active_since = Some(job.created_at);
        for t in &job.tiers {
            *self.slots(*t).1 = Some(job.created_at);
        }
    }

    /// Folds the in-flight job's outcome in: a success covers its tiers as of when it was queued.
    pub fn finish(&mut self, succeeded: bool) {
        if succeeded {
            let at = self.active_since;
            for t in self.active_tiers.clone() {
                *self.slots(t).0 = at;
            }
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures += 1;
        }
        self.active_job_id = None;
        self.active_history_pk = None;
        self.active_history_rk = None;
        self.active_tiers.clear();
        self.active_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{from_entity, to_entity};
    use crate::policy::{default_policies, due_tiers};
    use crate::{EngineType, TriggeredBy};

    #[test]
    fn a_finished_job_covers_its_tiers_and_round_trips() {
        let p = default_policies().remove(1);
        let now = Utc::now();
        let mut s = ScheduleState::new("d1");
        let due = due_tiers(&p, &s.history(), now);
        let job = BackupJob::new("d1", EngineType::Postgresql, TriggeredBy::Scheduler, due.clone(), now);
        s.start(&job);
        assert!(s.has_active_job());
        let back: ScheduleState = from_entity(to_entity("state", "d1", &s)).unwrap();
        assert_eq!(back, s);
        s.finish(true);
        assert!(!s.has_active_job());
        assert_eq!(s.last_success(), Some(now));
        assert!(due_tiers(&p, &s.history(), now).is_empty());
        let mut f = ScheduleState::new("d2");
        f.start(&BackupJob::new("d2", EngineType::Mysql, TriggeredBy::Scheduler, due, now));
        f.finish(false);
        assert_eq!((f.consecutive_failures, f.last_success()), (1, None));
        assert!(due_tiers(&p, &f.history(), now).is_empty(), "a failure is not retried at once");
    }
}
