//! The retention tick: for each configured database, delete the completed backups its policy no
//! longer keeps — blob first, then history row, then an audit row — and report what stayed and why.
//! Backups of databases no longer configured are left alone: nobody can say what policy they follow.

use std::collections::HashMap;

use chrono::Utc;
use dilux_azure::blob;
use dilux_azure_spin::{self as store, log, StoreError};
use dilux_domain::audit::{AuditLog, BACKUP_DELETED_RETENTION};
use dilux_domain::{tables, Engine};

use crate::{Ctx, COMPONENT};

pub async fn tick(ctx: &Ctx) -> Result<serde_json::Value, StoreError> {
    let a = &ctx.account;
    let (dbs, engines, policies, history) = futures::join!(
        store::all_databases(a),
        store::all_engines(a),
        store::policies(a),
        store::history_by_database(a, None),
    );
    let engines: HashMap<String, Engine> = engines?.into_iter().map(|e| (e.id.clone(), e)).collect();
    let (policies, history) = (policies?, history?);
    let (mut deleted, mut kept, mut errors) = (0usize, 0usize, 0usize);
    for db in dbs? {
        let Some(rows) = history.get(&db.id) else { continue };
        let Some(policy) = policies.get(&dilux_domain::policy::effective_policy_id(&db, engines.get(&db.engine_id)))
        else {
            continue;
        };
        let plan = dilux_domain::retention::plan_history(policy, rows);
        kept += plan.keep.len();
        for d in plan.delete {
            let row = rows.iter().find(|r| r.id == d.id).expect("plans only name given rows");
            // Blob first: a row without a blob is visible and explainable, a blob without a row is lost storage.
            let r =
                store::send("delete blob", blob::delete_blob(a, Utc::now(), &ctx.container, &row.blob_name)).await?;
            if let Err(e) = blob::parse_delete_blob(r) {
                log::event(COMPONENT, "retention_delete_failed", &[("backup", &row.id), ("error", &e)]);
                errors += 1;
                continue;
            }
            let sidecar = dilux_domain::manifest::manifest_blob(&row.blob_name);
            let r = store::send("delete manifest", blob::delete_blob(a, Utc::now(), &ctx.container, &sidecar)).await?;
            if let Err(e) = blob::parse_delete_blob(r) {
                log::event(COMPONENT, "retention_delete_failed", &[("backup", &row.id), ("error", &e)]);
            }
            let (pk, rk) = dilux_domain::backup::history_keys(row.created_at, &row.id);
            store::delete(a, tables::HISTORY, &pk, &rk).await?;
            let audit = AuditLog::system(
                BACKUP_DELETED_RETENTION,
                "backup",
                &row.id,
                &row.blob_name,
                serde_json::json!({
                    "database_id": row.database_id,
                    "blob_name": row.blob_name,
                    "policy_id": policy.id,
                    "reason": d.reason,
                }),
                ctx.now,
            );
            let (apk, ark) = audit.keys();
            store::insert_or_init(a, &ctx.container, tables::AUDIT, &apk, &ark, &audit).await?;
            deleted += 1;
        }
    }
    Ok(serde_json::json!({ "now": ctx.now, "deleted": deleted, "kept": kept, "errors": errors }))
}
