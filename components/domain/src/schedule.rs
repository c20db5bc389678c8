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
    use proptest::prelude::*;

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

    fn arb_policy() -> impl Strategy<Value = crate::policy::BackupPolicy> {
        (
            proptest::collection::vec((any::<bool>(), 1u32..5), 5),
            1u32..13,
            0u32..24,
            0u32..60,
            0u32..7,
            1u32..29,
            1u32..13,
        )
            .prop_map(|(tiers, every, h, m, dow, dom, month)| {
                let mut p = default_policies().remove(1);
                let time = Some(format!("{h:02}:{m:02}"));
                for (i, (enabled, keep)) in tiers.into_iter().enumerate() {
                    let c = match i {
                        0 => &mut p.hourly,
                        1 => &mut p.daily,
                        2 => &mut p.weekly,
                        3 => &mut p.monthly,
                        _ => &mut p.yearly,
                    };
                    c.enabled = enabled;
                    c.keep_count = keep;
                    if i > 0 {
                        c.time = time.clone();
                    }
                }
                p.hourly.interval_hours = Some(every);
                p.weekly.day_of_week = Some(dow);
                p.monthly.day_of_month = Some(dom);
                p.yearly.day_of_month = Some(dom);
                p.yearly.month = Some(month);
                p
            })
    }

    proptest! {
        /// Whatever the policy, the past and the clock: a tick's due tiers are active ones; once they
        /// are queued another tick at that moment queues nothing; after the job, success or failure,
        /// a tier is due again only for a new slot, except that a failed one is retried after RETRY_AFTER.
        #[test]
        fn ticks_are_idempotent(
            policy in arb_policy(),
            past_mins in proptest::option::of(0i64..600_000),
            at_mins in 0i64..1_000_000,
            later_mins in 0i64..29,
        ) {
            let base = chrono::TimeZone::with_ymd_and_hms(&Utc, 2024, 1, 1, 0, 0, 0).unwrap();
            let now = base + chrono::Duration::minutes(at_mins);
            let mut s = ScheduleState::new("d");
            if let Some(p) = past_mins {
                let t = now - chrono::Duration::minutes(p);
                let tiers = policy.active_tiers().collect();
                let job = BackupJob::new("d", EngineType::Mysql, TriggeredBy::Scheduler, tiers, t);
                s.start(&job);
                s.finish(true);
            }
            let due = due_tiers(&policy, &s.history(), now);
            prop_assert!(due.iter().all(|t| policy.active_tiers().any(|a| a == *t)));
            if due.is_empty() {
                return Ok(());
            }
            let job = BackupJob::new("d", EngineType::Mysql, TriggeredBy::Scheduler, due.clone(), now);
            s.start(&job);
            prop_assert!(due_tiers(&policy, &s.history(), now).is_empty(), "same moment, job queued: nothing more");
            let (mut ok, mut failed) = (s.clone(), s.clone());
            ok.finish(true);
            failed.finish(false);
            let soon = now + chrono::Duration::minutes(later_mins);
            // Within RETRY_AFTER, success or failure, a tier is only due again for a new slot.
            let after_ok = due_tiers(&policy, &ok.history(), soon);
            let after_failed = due_tiers(&policy, &failed.history(), soon);
            for t in after_ok.into_iter().chain(after_failed) {
                let slot = policy.previous_slot(t, soon).unwrap();
                prop_assert!(slot > now, "{:?} due again at {} without a new slot", t, soon);
            }
            // After RETRY_AFTER a failed tier is retried even in the same slot.
            let retry = now + crate::policy::RETRY_AFTER;
            let retried = due_tiers(&policy, &failed.history(), retry);
            prop_assert!(due.iter().all(|t| retried.contains(t)));
        }
    }
}

/// The outcome of the newest run of a tick (scheduler, retention), for the status page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TickRecord {
    pub name: String,
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// The tick's report, or its error.
    pub detail: String,
}

/// Where tick records live in the schedule table.
pub const TICK_PK: &str = "tick";
