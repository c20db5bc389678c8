//! Retention planning (pure): which completed backups a policy no longer needs, and why each
//! survivor stays. Modeled on "keep the newest N of each class" (rustic's `KeepOptions`), with the
//! rules a backup product must never break written as code:
//!
//! - a backup kept by any tier stays;
//! - the newest successful backup always stays, whatever the policy says;
//! - pending, running and failed rows are never touched (failed ones have no file);
//! - a backup of a tier the policy no longer has active stays (disabling a tier deletes nothing);
//! - manual backups (no tier) are never deleted automatically.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::policy::BackupPolicy;
use crate::{BackupStatus, BackupTier};

/// What retention needs to know of one backup.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub status: BackupStatus,
    pub tiers: Vec<BackupTier>,
    /// Suspect backups are kept but take no place in any keep window.
    pub suspect: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    pub keep: Vec<Decision>,
    /// Oldest first.
    pub delete: Vec<Decision>,
}

impl From<&crate::BackupResult> for Candidate {
    fn from(r: &crate::BackupResult) -> Self {
        let (id, tiers, suspect) = (r.id.clone(), r.tiers.clone(), r.suspect.is_some());
        Candidate { id, created_at: r.created_at, status: r.status, tiers, suspect }
    }
}

/// The retention plan of one database's history rows under `policy`.
pub fn plan_history(policy: &BackupPolicy, rows: &[crate::BackupResult]) -> RetentionPlan {
    let candidates: Vec<Candidate> = rows.iter().map(Candidate::from).collect();
    plan(policy, &candidates)
}

pub fn plan(policy: &BackupPolicy, backups: &[Candidate]) -> RetentionPlan {
    let mut completed: Vec<&Candidate> = backups.iter().filter(|b| b.status == BackupStatus::Completed).collect();
    // Newest first; ids break ties so the plan is deterministic.
    completed.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let active: Vec<BackupTier> = policy.active_tiers().collect();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); completed.len()];
    // Suspect backups take no place in a keep window: the good ones they would push out stay.
    let counted: Vec<usize> = (0..completed.len()).filter(|i| !completed[*i].suspect).collect();
    for t in &active {
        let keep = policy.tier(*t).keep_count as usize;
        for (rank, i) in counted.iter().copied().filter(|i| completed[*i].tiers.contains(t)).take(keep).enumerate() {
            reasons[i].push(format!("{} #{} of {keep}", BackupTier::as_str(*t), rank + 1));
        }
    }
    let mut out = RetentionPlan::default();
    for (i, b) in completed.iter().enumerate() {
        let mut why = std::mem::take(&mut reasons[i]);
        if b.suspect {
            why.push("suspect: kept, outside the keep windows, until confirmed or verified".into());
        } else if counted.first() == Some(&i) {
            why.push("newest successful backup".into());
        }
        if b.tiers.is_empty() {
            why.push("manual backup".into());
        }
        let inactive: Vec<&str> =
            b.tiers.iter().filter(|t| !active.contains(t)).map(|t| BackupTier::as_str(*t)).collect();
        if !inactive.is_empty() {
            why.push(format!("tier no longer active in the policy: {}", inactive.join(", ")));
        }
        if why.is_empty() {
            let tiers: Vec<&str> = b.tiers.iter().map(|t| BackupTier::as_str(*t)).collect();
            out.delete.push(Decision {
                id: b.id.clone(),
                reason: format!("older than the newest kept of its tiers ({})", tiers.join(", ")),
            });
        } else {
            out.keep.push(Decision { id: b.id.clone(), reason: why.join("; ") });
        }
    }
    out.delete.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{default_policies, TierConfig, TIERS};
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn cand(id: usize, hours_ago: i64, status: BackupStatus, tiers: Vec<BackupTier>) -> Candidate {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        Candidate {
            id: format!("b{id:03}"),
            created_at: now - Duration::hours(hours_ago),
            status,
            tiers,
            suspect: false,
        }
    }

    #[test]
    fn a_suspect_backup_is_kept_but_pushes_no_good_one_out() {
        let mut p = default_policies().remove(2); // development: 7 dailies, 2 weeklies
        p.daily.keep_count = 2;
        let daily = || vec![BackupTier::Daily];
        let mut b: Vec<Candidate> = (0..4).map(|i| cand(i, 24 * i as i64, BackupStatus::Completed, daily())).collect();
        b[0].suspect = true; // the newest: a tiny dump
        let plan = plan(&p, &b);
        let kept: Vec<&str> = plan.keep.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(kept, ["b000", "b001", "b002"], "two good dailies stay beside the suspect one");
        assert!(plan.keep[0].reason.starts_with("suspect"), "{:?}", plan.keep[0]);
        assert!(plan.keep[1].reason.contains("newest successful backup"), "{:?}", plan.keep[1]);
        assert_eq!(plan.delete.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["b003"]);
    }

    #[test]
    fn keeps_newest_n_per_tier_and_explains() {
        let p = default_policies().remove(2); // development: 7 dailies, 2 weeklies
        let mut b: Vec<Candidate> =
            (0..10).map(|d| cand(d, 24 * d as i64, BackupStatus::Completed, vec![BackupTier::Daily])).collect();
        b[0].tiers.push(BackupTier::Weekly);
        b[9].tiers.push(BackupTier::Weekly);
        let plan = plan(&p, &b);
        let deleted: Vec<&str> = plan.delete.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(deleted, vec!["b008", "b007"], "dailies 8 and 9 fall out; 9 stays as weekly #2");
        assert!(plan.keep.iter().any(|k| k.id == "b009" && k.reason == "weekly #2 of 2"));
        assert!(plan.keep.iter().any(|k| k.id == "b000" && k.reason.contains("newest successful backup")));
    }

    #[test]
    fn never_touches_running_failed_manual_or_disabled_tier_backups() {
        let mut p = default_policies().remove(2);
        p.daily.keep_count = 1;
        let b = vec![
            cand(1, 1, BackupStatus::Completed, vec![BackupTier::Daily]),
            cand(2, 2, BackupStatus::InProgress, vec![BackupTier::Daily]),
            cand(3, 3, BackupStatus::Failed, vec![BackupTier::Daily]),
            cand(4, 4, BackupStatus::Completed, vec![]),
            cand(5, 5, BackupStatus::Completed, vec![BackupTier::Yearly]),
            cand(6, 6, BackupStatus::Completed, vec![BackupTier::Daily]),
        ];
        let plan = plan(&p, &b);
        assert_eq!(plan.delete.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["b006"]);
    }

    fn arb_policy() -> impl Strategy<Value = BackupPolicy> {
        proptest::collection::vec((any::<bool>(), 0u32..4), 5).prop_map(|cfg| {
            let mut p = default_policies().remove(1);
            for (t, (enabled, keep)) in TIERS.iter().zip(cfg) {
                let c: &mut TierConfig = match t {
                    BackupTier::Hourly => &mut p.hourly,
                    BackupTier::Daily => &mut p.daily,
                    BackupTier::Weekly => &mut p.weekly,
                    BackupTier::Monthly => &mut p.monthly,
                    BackupTier::Yearly => &mut p.yearly,
                };
                c.enabled = enabled;
                c.keep_count = keep;
            }
            p
        })
    }

    fn arb_history() -> impl Strategy<Value = Vec<Candidate>> {
        let status = prop_oneof![
            6 => Just(BackupStatus::Completed),
            1 => Just(BackupStatus::Failed),
            1 => Just(BackupStatus::Pending),
            1 => Just(BackupStatus::InProgress),
        ];
        let tiers = proptest::sample::subsequence(TIERS.to_vec(), 0..=5);
        proptest::collection::vec((0i64..2000, status, tiers), 0..40)
            .prop_map(|v| v.into_iter().enumerate().map(|(i, (h, s, t))| cand(i, h, s, t)).collect())
    }

    proptest! {
        #[test]
        fn retention_invariants(policy in arb_policy(), history in arb_history()) {
            let plan = plan(&policy, &history);
            let deleted: std::collections::HashSet<&str> = plan.delete.iter().map(|d| d.id.as_str()).collect();
            // Every completed backup is decided exactly once; nothing else is.
            let completed: Vec<&Candidate> = history.iter().filter(|b| b.status == BackupStatus::Completed).collect();
            prop_assert_eq!(plan.keep.len() + plan.delete.len(), completed.len());
            for b in &history {
                if deleted.contains(b.id.as_str()) {
                    prop_assert_eq!(b.status, BackupStatus::Completed, "only completed backups are deleted");
                    prop_assert!(!b.tiers.is_empty(), "manual backups are never deleted");
                    let all_active = b.tiers.iter().all(|t| policy.active_tiers().any(|a| a == *t));
                    prop_assert!(all_active, "inactive tiers protect");
                }
            }
            // The newest completed backup survives.
            let newest = completed.iter().max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            if let Some(newest) = newest {
                prop_assert!(!deleted.contains(newest.id.as_str()));
            }
            // The newest keep_count of every active tier survive.
            for t in policy.active_tiers() {
                let mut of_tier: Vec<&&Candidate> = completed.iter().filter(|b| b.tiers.contains(&t)).collect();
                of_tier.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
                for b in of_tier.iter().take(policy.tier(t).keep_count as usize) {
                    prop_assert!(!deleted.contains(b.id.as_str()), "{} is among the newest of {:?}", b.id, t);
                }
            }
            // Applying the plan and planning again deletes nothing more: retention is idempotent.
            let survivors: Vec<Candidate> =
                history.iter().filter(|b| !deleted.contains(b.id.as_str())).cloned().collect();
            prop_assert!(super::plan(&policy, &survivors).delete.is_empty());
        }
    }
}
