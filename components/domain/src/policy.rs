//! Backup policies: tiers (hourly every N hours; daily, weekly, monthly, yearly at a UTC time), each
//! with `enabled` and `keep_count`, and the pure rule deciding which tiers are due now.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::compression::Compression;
use crate::encryption::Encryption;
use crate::format::DumpFormat;
use crate::{BackupTier, FieldError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub enabled: bool,
    pub keep_count: u32,
    /// Hourly tier: hours between backups, 1–12 (aligned to midnight UTC: every 6 h = 00, 06, 12, 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_hours: Option<u32>,
    /// "HH:MM" UTC (daily, weekly, monthly, yearly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Weekly tier: 0 = Sunday … 6 = Saturday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<u32>,
    /// Monthly and yearly tiers: 1–28, so every month has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<u32>,
    /// Yearly tier: 1–12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<u32>,
}

/// Restore drills: how often the newest backup of each database following the policy is restored
/// into a scratch database and compared with its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyPolicy {
    /// Days between drills, 1–365; none: no scheduled drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 365))]
    pub every_days: Option<u32>,
    /// Also drill each new backup once it completed.
    #[serde(default)]
    pub after_each_backup: bool,
    /// The server drills restore onto (same engine type); the database's own server by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub drill_engine_id: Option<String>,
}

impl VerifyPolicy {
    pub fn enabled(&self) -> bool {
        self.every_days.is_some() || self.after_each_backup
    }

    /// In words: "restore drill every 7 days and after each backup", or "no restore drills".
    pub fn describe(&self) -> String {
        match (self.every_days, self.after_each_backup) {
            (None, false) => "no restore drills".into(),
            (Some(d), false) => format!("restore drill every {d} days"),
            (None, true) => "restore drill after each backup".into(),
            (Some(d), true) => format!("restore drill every {d} days and after each backup"),
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(d) = self.every_days {
            in_range("verification.every_days", Some(d), 1, 365)?;
        }
        if self.drill_engine_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err(FieldError::new("verification.drill_engine_id", "must name a server, or be left out"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BackupPolicy {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub is_system: bool,
    pub hourly: TierConfig,
    pub daily: TierConfig,
    pub weekly: TierConfig,
    pub monthly: TierConfig,
    pub yearly: TierConfig,
    #[serde(default)]
    pub verification: VerifyPolicy,
    /// How new backups are compressed (policies stored before the choice existed: zstd level 3).
    #[serde(default)]
    pub compression: Compression,
    /// Whom new backups are encrypted to; none: stored unencrypted.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// What PostgreSQL databases' dumps are made of (MariaDB's are always SQL).
    #[serde(default)]
    pub postgresql_format: DumpFormat,
}

/// `POST /api/backup-policies` and `PUT /api/backup-policies/{id}`: the whole policy; tiers left out
/// are disabled.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = crate::schema::some_active_tier()))]
pub struct PolicyInput {
    #[schemars(regex(pattern = crate::schema::NAME), length(max = 100))]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::hourly_tier")]
    pub hourly: TierConfig,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::daily_tier")]
    pub daily: TierConfig,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::weekly_tier")]
    pub weekly: TierConfig,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::monthly_tier")]
    pub monthly: TierConfig,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::yearly_tier")]
    pub yearly: TierConfig,
    #[serde(default)]
    pub verification: VerifyPolicy,
    /// How its backups are compressed; zstd level 3 when left out.
    #[serde(default)]
    pub compression: Compression,
    /// Encrypt its backups to these age recipients; left out or null: not encrypted. Changing it needs an
    /// admin.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// PostgreSQL databases only: `plain` SQL (the default) or pg_dump's `custom` archive, which restores
    /// with `pg_restore` and can restore chosen tables only. MariaDB dumps are always SQL.
    #[serde(default)]
    pub postgresql_format: DumpFormat,
}

impl PolicyInput {
    /// The policy this input describes, validated (names the first bad field).
    pub fn into_policy(self, id: String) -> Result<BackupPolicy, FieldError> {
        if self.name.trim().chars().count() > 100 {
            return Err(FieldError::new("name", "must be at most 100 characters"));
        }
        let p = BackupPolicy {
            id,
            name: self.name.trim().to_string(),
            description: self.description,
            is_system: false,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            verification: self.verification,
            compression: self.compression,
            encryption: self.encryption,
            postgresql_format: self.postgresql_format,
        };
        p.validate()?;
        p.compression.validate("compression")?;
        if let Some(e) = &p.encryption {
            e.validate("encryption")?;
        }
        p.check_inactive_tiers()?;
        p.verification.validate()?;
        if p.active_tiers().next().is_none() {
            return Err(FieldError::new("daily", "a policy needs at least one enabled tier with keep_count above 0"));
        }
        Ok(p)
    }
}

/// A policy as a Table row: Table entities hold only scalars, so the tiers are JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRow {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub is_system: bool,
    /// `{"hourly": TierConfig, "daily": …, "weekly": …, "monthly": …, "yearly": …}`.
    pub tiers: String,
    #[serde(default)]
    pub verification: VerifyPolicy,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub postgresql_format: DumpFormat,
}

#[derive(Serialize, Deserialize)]
struct Tiers {
    hourly: TierConfig,
    daily: TierConfig,
    weekly: TierConfig,
    monthly: TierConfig,
    yearly: TierConfig,
}

impl From<&BackupPolicy> for PolicyRow {
    fn from(p: &BackupPolicy) -> Self {
        let tiers = Tiers {
            hourly: p.hourly.clone(),
            daily: p.daily.clone(),
            weekly: p.weekly.clone(),
            monthly: p.monthly.clone(),
            yearly: p.yearly.clone(),
        };
        PolicyRow {
            id: p.id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            is_system: p.is_system,
            tiers: serde_json::to_string(&tiers).expect("tiers serialize"),
            verification: p.verification.clone(),
            compression: p.compression,
            encryption: p.encryption.clone(),
            postgresql_format: p.postgresql_format,
        }
    }
}

impl TryFrom<PolicyRow> for BackupPolicy {
    type Error = serde_json::Error;

    fn try_from(r: PolicyRow) -> Result<Self, Self::Error> {
        let t: Tiers = serde_json::from_str(&r.tiers)?;
        Ok(BackupPolicy {
            id: r.id,
            name: r.name,
            description: r.description,
            is_system: r.is_system,
            hourly: t.hourly,
            daily: t.daily,
            weekly: t.weekly,
            monthly: t.monthly,
            yearly: t.yearly,
            verification: r.verification,
            compression: r.compression,
            encryption: r.encryption,
            postgresql_format: r.postgresql_format,
        })
    }
}

pub const TIERS: [BackupTier; 5] =
    [BackupTier::Hourly, BackupTier::Daily, BackupTier::Weekly, BackupTier::Monthly, BackupTier::Yearly];

/// The policy a database uses when neither it nor its server names one.
pub const DEFAULT_POLICY_ID: &str = "production-standard";

fn tier(enabled: bool, keep_count: u32) -> TierConfig {
    TierConfig { enabled, keep_count, ..Default::default() }
}

fn at(mut t: TierConfig, time: &str) -> TierConfig {
    t.time = Some(time.into());
    t
}

/// A stored policy row that does not read as a policy.
#[derive(Debug, thiserror::Error)]
#[error("policy `{id}` is unreadable: {source}")]
pub struct UnreadablePolicy {
    pub id: String,
    pub source: serde_json::Error,
}

/// Every policy by id: the system defaults, each replaced by its stored row once edited, plus the
/// custom ones.
pub fn all_policies(
    stored: impl IntoIterator<Item = PolicyRow>,
) -> Result<std::collections::HashMap<String, BackupPolicy>, UnreadablePolicy> {
    let mut out: std::collections::HashMap<_, _> = default_policies().into_iter().map(|p| (p.id.clone(), p)).collect();
    for row in stored {
        let id = row.id.clone();
        let p = BackupPolicy::try_from(row).map_err(|source| UnreadablePolicy { id: id.clone(), source })?;
        out.insert(id, p);
    }
    Ok(out)
}

/// The policy a database follows: its own, else its server's, else the default.
pub fn effective_policy_id(db: &crate::Database, engine: Option<&crate::Engine>) -> String {
    db.policy_id
        .clone()
        .or_else(|| engine.and_then(|e| e.policy_id.clone()))
        .unwrap_or_else(|| DEFAULT_POLICY_ID.into())
}

/// The seeded system policies (not deletable).
pub fn default_policies() -> Vec<BackupPolicy> {
    let hourly = |enabled, keep, every| TierConfig { interval_hours: Some(every), ..tier(enabled, keep) };
    let weekly = |enabled, keep| TierConfig { day_of_week: Some(0), ..at(tier(enabled, keep), "03:00") };
    let monthly = |enabled, keep| TierConfig { day_of_month: Some(1), ..at(tier(enabled, keep), "04:00") };
    let yearly =
        |enabled, keep| TierConfig { day_of_month: Some(1), month: Some(1), ..at(tier(enabled, keep), "05:00") };
    vec![
        BackupPolicy {
            id: "production-critical".into(),
            name: "Production Critical".into(),
            description: concat!(
                "Hourly backups for a day, dailies for two weeks, weeklies for two months, ",
                "monthlies for a year, three yearlies"
            )
            .into(),
            is_system: true,
            hourly: hourly(true, 24, 1),
            daily: at(tier(true, 14), "02:00"),
            weekly: weekly(true, 8),
            monthly: monthly(true, 12),
            yearly: yearly(true, 3),
            verification: VerifyPolicy::default(),
            compression: Compression::default(),
            encryption: None,
            postgresql_format: DumpFormat::Plain,
        },
        BackupPolicy {
            id: DEFAULT_POLICY_ID.into(),
            name: "Production Standard".into(),
            description: "Standard production backup policy".into(),
            is_system: true,
            hourly: hourly(true, 12, 1),
            daily: at(tier(true, 7), "02:00"),
            weekly: weekly(true, 4),
            monthly: monthly(true, 2),
            yearly: yearly(true, 1),
            verification: VerifyPolicy::default(),
            compression: Compression::default(),
            encryption: None,
            postgresql_format: DumpFormat::Plain,
        },
        BackupPolicy {
            id: "development".into(),
            name: "Development".into(),
            description: "Dailies for a week and two weeklies".into(),
            is_system: true,
            hourly: hourly(false, 0, 1),
            daily: at(tier(true, 7), "02:00"),
            weekly: weekly(true, 2),
            monthly: monthly(false, 0),
            yearly: yearly(false, 0),
            verification: VerifyPolicy::default(),
            compression: Compression::default(),
            encryption: None,
            postgresql_format: DumpFormat::Plain,
        },
    ]
}

fn parse_time(field: &str, t: Option<&str>) -> Result<(u32, u32), FieldError> {
    let t = t.ok_or_else(|| FieldError::new(field, "is required (\"HH:MM\", UTC)"))?;
    let (h, m) = t.split_once(':').ok_or_else(|| FieldError::new(field, "must be \"HH:MM\""))?;
    let two_digits = h.len() == 2 && m.len() == 2;
    match (h.parse::<u32>(), m.parse::<u32>()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 && two_digits => Ok((h, m)),
        _ => Err(FieldError::new(field, "must be \"HH:MM\" with HH 00–23 and MM 00–59")),
    }
}

fn in_range(field: &str, v: Option<u32>, lo: u32, hi: u32) -> Result<u32, FieldError> {
    match v {
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(_) => Err(FieldError::new(field, format!("must be between {lo} and {hi}"))),
        None => Err(FieldError::new(field, "is required")),
    }
}

impl BackupPolicy {
    pub fn tier(&self, t: BackupTier) -> &TierConfig {
        match t {
            BackupTier::Hourly => &self.hourly,
            BackupTier::Daily => &self.daily,
            BackupTier::Weekly => &self.weekly,
            BackupTier::Monthly => &self.monthly,
            BackupTier::Yearly => &self.yearly,
        }
    }

    pub fn tier_mut(&mut self, t: BackupTier) -> &mut TierConfig {
        match t {
            BackupTier::Hourly => &mut self.hourly,
            BackupTier::Daily => &mut self.daily,
            BackupTier::Weekly => &mut self.weekly,
            BackupTier::Monthly => &mut self.monthly,
            BackupTier::Yearly => &mut self.yearly,
        }
    }

    /// The tiers where `self` keeps fewer backups than `before` (an inactive tier keeps none): moving a
    /// database from `before` to `self` lets retention delete backups that would have stayed.
    pub fn keeps_less_than(&self, before: &BackupPolicy) -> Vec<BackupTier> {
        // What a tier covers: its count, and for hourly backups the hours between them too (24 kept every
        // 12 hours reach back 12 days; every hour, one).
        let kept = |p: &BackupPolicy, t: BackupTier| {
            let c = p.tier(t);
            let every = if t == BackupTier::Hourly { c.interval_hours.unwrap_or(1).max(1) } else { 1 };
            if c.enabled {
                u64::from(c.keep_count) * u64::from(every)
            } else {
                0
            }
        };
        TIERS.into_iter().filter(|t| kept(self, *t) < kept(before, *t)).collect()
    }

    /// Tiers that produce backups: enabled with something to keep.
    pub fn active_tiers(&self) -> impl Iterator<Item = BackupTier> + '_ {
        TIERS.into_iter().filter(|t| self.tier(*t).enabled && self.tier(*t).keep_count > 0)
    }

    /// Tier `t`'s schedule in words, e.g. "weekly on Sunday at 03:00 UTC, keep 4"; "off" when inactive.
    pub fn describe(&self, t: BackupTier) -> String {
        let c = self.tier(t);
        if !c.enabled || c.keep_count == 0 {
            return "off".into();
        }
        const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let at = c.time.as_deref().unwrap_or("??:??");
        let when = match t {
            BackupTier::Hourly => match c.interval_hours.unwrap_or(1) {
                1 => "every hour".to_string(),
                n => format!("every {n} hours"),
            },
            BackupTier::Daily => format!("daily at {at} UTC"),
            BackupTier::Weekly => {
                format!("weekly on {} at {at} UTC", c.day_of_week.and_then(|d| DAYS.get(d as usize)).unwrap_or(&"?"))
            }
            BackupTier::Monthly => format!("monthly on day {} at {at} UTC", c.day_of_month.unwrap_or(1)),
            BackupTier::Yearly => format!(
                "yearly on {} {} at {at} UTC",
                c.day_of_month.unwrap_or(1),
                c.month.and_then(|m| MONTHS.get(m.wrapping_sub(1) as usize)).unwrap_or(&"?")
            ),
        };
        format!("{when}, keep {}", c.keep_count)
    }

    /// `12h/7d/4w/2m/1y`: keep counts of the active tiers.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .active_tiers()
            .map(|t| {
                let unit = match t {
                    BackupTier::Hourly => 'h',
                    BackupTier::Daily => 'd',
                    BackupTier::Weekly => 'w',
                    BackupTier::Monthly => 'm',
                    BackupTier::Yearly => 'y',
                };
                format!("{}{unit}", self.tier(t).keep_count)
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("/")
        }
    }

    /// The schedule fields given to tiers that are not active are checked too: nothing malformed is stored.
    fn check_inactive_tiers(&self) -> Result<(), FieldError> {
        use BackupTier::*;
        for t in [Hourly, Daily, Weekly, Monthly, Yearly] {
            let c = self.tier(t);
            let f = |s: &str| format!("{}.{s}", t.as_str());
            if c.time.is_some() {
                parse_time(&f("time"), c.time.as_deref())?;
            }
            for (field, v, lo, hi) in [
                ("interval_hours", c.interval_hours, 1, 12),
                ("day_of_week", c.day_of_week, 0, 6),
                ("day_of_month", c.day_of_month, 1, 28),
                ("month", c.month, 1, 12),
            ] {
                if v.is_some() {
                    in_range(&f(field), v, lo, hi)?;
                }
            }
        }
        Ok(())
    }

    /// The cron expression (UTC, 5 fields) of tier `t`, after validating its fields.
    pub fn cron(&self, t: BackupTier) -> Result<String, FieldError> {
        let c = self.tier(t);
        let name = serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let f = |s: &str| format!("{name}.{s}");
        Ok(match t {
            BackupTier::Hourly => {
                let n = in_range(&f("interval_hours"), c.interval_hours, 1, 12)?;
                format!("0 */{n} * * *")
            }
            BackupTier::Daily => {
                let (h, m) = parse_time(&f("time"), c.time.as_deref())?;
                format!("{m} {h} * * *")
            }
            BackupTier::Weekly => {
                let (h, m) = parse_time(&f("time"), c.time.as_deref())?;
                let d = in_range(&f("day_of_week"), c.day_of_week, 0, 6)?;
                format!("{m} {h} * * {d}")
            }
            BackupTier::Monthly => {
                let (h, m) = parse_time(&f("time"), c.time.as_deref())?;
                let d = in_range(&f("day_of_month"), c.day_of_month, 1, 28)?;
                format!("{m} {h} {d} * *")
            }
            BackupTier::Yearly => {
                let (h, m) = parse_time(&f("time"), c.time.as_deref())?;
                let d = in_range(&f("day_of_month"), c.day_of_month, 1, 28)?;
                let mo = in_range(&f("month"), c.month, 1, 12)?;
                format!("{m} {h} {d} {mo} *")
            }
        })
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        if self.name.trim().is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        for t in self.active_tiers() {
            self.cron(t)?;
        }
        Ok(())
    }

    /// The most recent scheduled instant of tier `t` at or before `now`.
    pub fn previous_slot(&self, t: BackupTier, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = croner::Cron::from_str(&self.cron(t).ok()?).ok()?;
        cron.find_previous_occurrence(&now, true).ok()
    }

    /// The shortest interval between two slots of the policy's most frequent active tier.
    pub fn most_frequent_interval(&self) -> Option<Duration> {
        self.active_tiers().next().map(|t| match t {
            BackupTier::Hourly => Duration::hours(i64::from(self.hourly.interval_hours.unwrap_or(1))),
            BackupTier::Daily => Duration::days(1),
            BackupTier::Weekly => Duration::weeks(1),
            BackupTier::Monthly => Duration::days(31),
            BackupTier::Yearly => Duration::days(366),
        })
    }
}

/// What the scheduler remembers per database and tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierHistory {
    /// When the newest successful backup carrying this tier was taken.
    pub last_success: Option<DateTime<Utc>>,
    /// When a backup carrying this tier was last queued (successful or not).
    pub last_attempt: Option<DateTime<Utc>>,
}

/// A failed tier is retried after this long, not on every tick.
pub const RETRY_AFTER: Duration = Duration::minutes(30);

/// The tiers due at `now`: active tiers whose latest slot has no successful backup yet, unless one
/// was attempted for that slot less than [`RETRY_AFTER`] ago. However many slots were missed (downtime),
/// a tier is due once: the caller queues one backup carrying every due tier.
pub fn due_tiers(
    policy: &BackupPolicy,
    history: &BTreeMap<BackupTier, TierHistory>,
    now: DateTime<Utc>,
) -> Vec<BackupTier> {
    policy
        .active_tiers()
        .filter(|t| {
            let Some(slot) = policy.previous_slot(*t, now) else { return false };
            let h = history.get(t).cloned().unwrap_or_default();
            let covered = h.last_success.is_some_and(|s| s >= slot);
            let recently_tried = h.last_attempt.is_some_and(|a| a >= slot && now - a < RETRY_AFTER);
            !covered && !recently_tried
        })
        .collect()
}

/// When a database's backups are overdue: its newest success (or, never backed up, its creation) is
/// older than twice its policy's most frequent interval. Answers how long it has been.
pub fn overdue(
    policy: &BackupPolicy,
    last_success: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let every = policy.most_frequent_interval()?;
    let since = now - last_success.unwrap_or(created_at);
    (since > every * 2).then_some(since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn standard() -> BackupPolicy {
        default_policies().into_iter().find(|p| p.id == DEFAULT_POLICY_ID).unwrap()
    }

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_policy_keeps_less_where_any_tier_keeps_fewer() {
        let by_id = |id: &str| default_policies().into_iter().find(|p| p.id == id).unwrap();
        let (critical, dev) = (by_id("production-critical"), by_id("development"));
        use BackupTier::*;
        assert_eq!(dev.keeps_less_than(&standard()), vec![Hourly, Weekly, Monthly, Yearly], "the same dailies");
        assert_eq!(critical.keeps_less_than(&standard()), vec![], "more of everything");
        let mut fewer_weeklies = standard();
        fewer_weeklies.weekly.keep_count = 3;
        assert_eq!(fewer_weeklies.keeps_less_than(&standard()), vec![BackupTier::Weekly]);
        let mut disabled = standard();
        disabled.yearly.enabled = false;
        assert_eq!(disabled.keeps_less_than(&standard()), vec![BackupTier::Yearly]);
        let mut sparse = standard();
        sparse.hourly.interval_hours = Some(12);
        assert_eq!(standard().keeps_less_than(&sparse), vec![Hourly], "the same count, hourly instead of every 12 h");
    }

    #[test]
    fn policies_round_trip_through_rows() {
        for p in default_policies() {
            let row = PolicyRow::from(&p);
            let entity = crate::entity::to_entity("policy", &p.id, &row);
            let back: PolicyRow = crate::entity::from_entity(entity).unwrap();
            assert_eq!(BackupPolicy::try_from(back).unwrap(), p);
        }
    }

    #[test]
    fn tiers_in_words() {
        let p = standard();
        let words: Vec<String> = TIERS.iter().map(|t| p.describe(*t)).collect();
        assert_eq!(
            words,
            vec![
                "every hour, keep 12",
                "daily at 02:00 UTC, keep 7",
                "weekly on Sunday at 03:00 UTC, keep 4",
                "monthly on day 1 at 04:00 UTC, keep 2",
                "yearly on 1 January at 05:00 UTC, keep 1",
            ]
        );
        assert_eq!(default_policies()[2].describe(BackupTier::Hourly), "off");
    }

    #[test]
    fn summaries_and_defaults() {
        let p = default_policies();
        assert_eq!(
            p.iter().map(|p| p.summary()).collect::<Vec<_>>(),
            vec!["24h/14d/8w/12m/3y", "12h/7d/4w/2m/1y", "7d/2w"]
        );
        assert!(p.iter().all(|p| p.validate().is_ok() && p.is_system));
    }

    #[test]
    fn slots_follow_the_tier_schedules() {
        let p = standard();
        let now = t(2026, 3, 15, 10, 30); // a Sunday
        assert_eq!(p.previous_slot(BackupTier::Hourly, now), Some(t(2026, 3, 15, 10, 0)));
        assert_eq!(p.previous_slot(BackupTier::Daily, now), Some(t(2026, 3, 15, 2, 0)));
        assert_eq!(p.previous_slot(BackupTier::Weekly, now), Some(t(2026, 3, 15, 3, 0)));
        assert_eq!(p.previous_slot(BackupTier::Monthly, now), Some(t(2026, 3, 1, 4, 0)));
        assert_eq!(p.previous_slot(BackupTier::Yearly, now), Some(t(2026, 1, 1, 5, 0)));
        assert_eq!(p.previous_slot(BackupTier::Daily, t(2026, 3, 15, 1, 59)), Some(t(2026, 3, 14, 2, 0)));
    }

    #[test]
    fn a_new_database_is_backed_up_once_for_every_tier_and_then_not_again() {
        let p = standard();
        let now = t(2026, 3, 15, 10, 30);
        let due = due_tiers(&p, &BTreeMap::new(), now);
        assert_eq!(due, TIERS.to_vec());
        let done: BTreeMap<_, _> =
            due.iter().map(|t| (*t, TierHistory { last_success: Some(now), last_attempt: Some(now) })).collect();
        assert!(
            due_tiers(&p, &done, now + Duration::minutes(1)).is_empty(),
            "a second tick in the slot queues nothing"
        );
        assert_eq!(due_tiers(&p, &done, t(2026, 3, 15, 11, 0)), vec![BackupTier::Hourly]);
    }

    #[test]
    fn downtime_catches_up_with_one_backup_not_a_storm() {
        let p = standard();
        let last = t(2026, 3, 1, 0, 0);
        let h: BTreeMap<_, _> =
            TIERS.iter().map(|t| (*t, TierHistory { last_success: Some(last), last_attempt: Some(last) })).collect();
        let due = due_tiers(&p, &h, t(2026, 3, 20, 9, 15));
        assert_eq!(
            due,
            vec![BackupTier::Hourly, BackupTier::Daily, BackupTier::Weekly, BackupTier::Monthly],
            "each missed tier once"
        );
    }

    #[test]
    fn failures_are_retried_after_a_pause() {
        let p = standard();
        let now = t(2026, 3, 15, 2, 5);
        let failed: BTreeMap<_, _> = [(
            BackupTier::Daily,
            TierHistory { last_success: Some(t(2026, 3, 14, 2, 0)), last_attempt: Some(t(2026, 3, 15, 2, 1)) },
        )]
        .into();
        assert!(!due_tiers(&p, &failed, now).contains(&BackupTier::Daily));
        assert!(due_tiers(&p, &failed, now + RETRY_AFTER).contains(&BackupTier::Daily));
    }

    #[test]
    fn overdue_after_twice_the_most_frequent_interval() {
        let p = standard(); // hourly every hour
        let now = t(2026, 3, 15, 10, 0);
        assert_eq!(overdue(&p, Some(now - Duration::minutes(119)), now - Duration::days(9), now), None);
        assert_eq!(
            overdue(&p, Some(now - Duration::minutes(121)), now - Duration::days(9), now),
            Some(Duration::minutes(121))
        );
        assert_eq!(
            overdue(&p, None, now - Duration::hours(1), now),
            None,
            "a new database gets time for its first backup"
        );
        let dev = default_policies().remove(2); // daily
        assert!(overdue(&dev, Some(now - Duration::hours(47)), now, now).is_none());
        assert!(overdue(&dev, Some(now - Duration::hours(49)), now, now).is_some());
    }

    #[test]
    fn invalid_tiers_name_their_field() {
        let mut p = standard();
        p.daily.time = Some("25:00".into());
        assert_eq!(p.validate().unwrap_err().field, "daily.time");
        let mut p = standard();
        p.monthly.day_of_month = Some(31);
        assert_eq!(p.validate().unwrap_err().field, "monthly.day_of_month");
        let mut p = standard();
        p.hourly.interval_hours = Some(0);
        assert_eq!(p.validate().unwrap_err().field, "hourly.interval_hours");
    }
}
