//! The sweeper tick: backups queued or running far longer than any job takes (a lost message, a
//! worker that stopped without anyone settling its row) are failed with the reason, so their database
//! is no longer "in flight" forever and the scheduler queues its next backup.

use chrono::Duration;
use dilux_azure::table::literal;
use dilux_azure_spin::{self as store, log, StoreError};
use dilux_domain::backup::{history_keys, PENDING_BOUND, RUNNING_BOUND};
use dilux_domain::{tables, BackupResult, ErrorClass};

use crate::{Ctx, COMPONENT};

/// How far back rows are looked at: well past both bounds, so a stuck row is found on many ticks.
const LOOK_BACK_DAYS: i64 = 14;

pub async fn tick(ctx: &Ctx) -> Result<serde_json::Value, StoreError> {
    let since = (ctx.now - Duration::days(LOOK_BACK_DAYS)).format("%Y-%m-%d").to_string();
    let filter = format!("PartitionKey ge {} and (status eq 'pending' or status eq 'in_progress')", literal(&since));
    let rows = store::query_all::<BackupResult>(&ctx.account, tables::HISTORY, &filter).await?;
    let (mut failed, mut raced) = (0usize, 0usize);
    for (mut row, etag) in rows {
        let Some(reason) = row.stuck(ctx.now) else { continue };
        row.fail(ctx.now, ErrorClass::Timeout, &reason);
        let (pk, rk) = history_keys(row.created_at, &row.id);
        // With the ETag read: a worker that settles the row meanwhile wins.
        match store::replace(&ctx.account, tables::HISTORY, &pk, &rk, &row, Some(&etag)).await {
            Ok(_) => {
                log::event(COMPONENT, "stuck_backup_failed", &[("backup", &row.id), ("database", &row.database_id)]);
                failed += 1;
            }
            Err(e) if e.status() == Some(412) => raced += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(serde_json::json!({
        "failed": failed,
        "raced": raced,
        "pending_bound_hours": PENDING_BOUND.num_hours(),
        "running_bound_hours": RUNNING_BOUND.num_hours(),
    }))
}
