//! Backup policies: the seeded system ones (editable, never deletable) and custom ones, each with its
//! summary (`12h/7d/4w/2m/1y`) and how many databases use it.

use std::collections::HashMap;

use dilux_domain::policy::{default_policies, effective_policy_id, BackupPolicy, PolicyInput, PolicyRow};
use dilux_domain::{Database, Engine};
use dilux_store::StoreError;
use serde::Serialize;

use crate::error::{changed_meanwhile, ApiError, ApiResult, Kind};
use crate::http::{Cx, Reply};
use crate::App;

#[derive(Serialize, schemars::JsonSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub policy: BackupPolicy,
    pub summary: String,
    pub database_count: usize,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct PolicyList {
    pub policies: Vec<PolicyView>,
    pub total: usize,
}

fn view(p: &BackupPolicy, used: &HashMap<String, usize>) -> PolicyView {
    PolicyView { policy: p.clone(), summary: p.summary(), database_count: used.get(&p.id).copied().unwrap_or(0) }
}

/// Every policy by id: the system defaults, then stored ones.
pub async fn all(app: &App) -> ApiResult<HashMap<String, BackupPolicy>> {
    let rows = app.stores.policies.list().await?.into_iter().map(|(row, _)| row);
    dilux_domain::policy::all_policies(rows).map_err(|e| {
        let (table, key, detail) = (dilux_domain::tables::POLICIES.into(), e.id.clone(), e.source.to_string());
        StoreError::Corrupt { table, key, detail }.into()
    })
}

fn decode(row: PolicyRow) -> ApiResult<BackupPolicy> {
    let id = row.id.clone();
    BackupPolicy::try_from(row).map_err(|e| {
        StoreError::Corrupt { table: dilux_domain::tables::POLICIES.into(), key: id, detail: e.to_string() }.into()
    })
}

/// A policy id must name a system policy or a stored one.
pub async fn check_exists(app: &App, policy_id: Option<&str>) -> ApiResult<()> {
    let Some(id) = policy_id else { return Ok(()) };
    if default_policies().iter().any(|p| p.id == id) || app.stores.policies.get(id).await?.is_some() {
        return Ok(());
    }
    Err(ApiError::unknown("policy_id", format!("no backup policy `{id}` exists")))
}

/// Moving a database from policy `from` to `to` where `to` keeps fewer backups of some tier lets retention
/// delete backups that would have stayed: that needs the permission to delete backups.
pub async fn check_keeps_as_much(cx: &Cx<'_>, from: &str, to: &str) -> ApiResult<()> {
    if from == to || cx.role().can(dilux_domain::user::Permission::DeleteBackups) {
        return Ok(());
    }
    let policies = all(cx.app).await?;
    let (Some(before), Some(after)) = (policies.get(from), policies.get(to)) else { return Ok(()) };
    let fewer = after.keeps_less_than(before);
    if fewer.is_empty() {
        return Ok(());
    }
    let tiers: Vec<&str> = fewer.iter().map(|t| t.as_str()).collect();
    cx.require(
        dilux_domain::user::Permission::DeleteBackups,
        &format!("moving to `{to}`, which keeps fewer {} backups than `{from}`,", tiers.join(", ")),
    )
}

/// How many databases use each policy (their own, else their server's, else the default).
fn count_usage(dbs: &[Database], engines: &[Engine]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for d in dbs {
        *counts.entry(effective_policy_id(d, engines.iter().find(|e| e.id == d.engine_id))).or_insert(0) += 1;
    }
    counts
}

async fn catalog(app: &App) -> ApiResult<(Vec<Database>, Vec<Engine>)> {
    let dbs = app.stores.databases.list().await?.into_iter().map(|(d, _)| d).collect();
    let engines = app.stores.engines.list().await?.into_iter().map(|(e, _)| e).collect();
    Ok((dbs, engines))
}

async fn usage(app: &App) -> ApiResult<HashMap<String, usize>> {
    let (dbs, engines) = catalog(app).await?;
    Ok(count_usage(&dbs, &engines))
}

pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let all = all(cx.app).await?;
    let used = usage(cx.app).await?;
    let mut policies: Vec<&BackupPolicy> = all.values().collect();
    // System policies first, in their seeded order, then custom ones by name.
    let seeded: Vec<String> = default_policies().into_iter().map(|p| p.id).collect();
    policies.sort_by_key(|p| (seeded.iter().position(|id| *id == p.id).unwrap_or(usize::MAX), p.name.to_lowercase()));
    let out: Vec<PolicyView> = policies.iter().map(|p| view(p, &used)).collect();
    Ok(Reply::json(&PolicyList { total: out.len(), policies: out }))
}

/// A policy and its stored version (`None`: a system policy never edited has no row yet).
pub(crate) async fn load(app: &App, id: &str) -> ApiResult<(BackupPolicy, Option<String>)> {
    if let Some((row, etag)) = app.stores.policies.get(id).await? {
        return Ok((decode(row)?, Some(etag)));
    }
    default_policies()
        .into_iter()
        .find(|p| p.id == id)
        .map(|p| (p, None))
        .ok_or_else(|| ApiError::not_found("backup policy", id))
}

pub async fn get(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (p, etag) = load(cx.app, cx.id()).await?;
    Ok(Reply::json(&view(&p, &usage(cx.app).await?)).etag(etag))
}

fn refuse_duplicate_name(all: &HashMap<String, BackupPolicy>, name: &str, except: Option<&str>) -> ApiResult<()> {
    if all.values().any(|p| Some(p.id.as_str()) != except && p.name.eq_ignore_ascii_case(name.trim())) {
        return Err(ApiError::new(Kind::Duplicate, format!("a policy named `{}` already exists", name.trim())));
    }
    Ok(())
}

pub async fn create(cx: &Cx<'_>) -> ApiResult<Reply> {
    let input: PolicyInput = cx.body()?;
    refuse_duplicate_name(&all(cx.app).await?, &input.name, None)?;
    let policy = input.into_policy(uuid::Uuid::new_v4().to_string())?;
    cx.app.stores.policies.insert(&policy.id, &PolicyRow::from(&policy)).await?;
    Ok(Reply::json(&view(&policy, &HashMap::new())).about(&policy.id, &policy.name))
}

/// Replaces a policy's name, description and tiers. System policies may be tuned too (they stay
/// system policies); the next retention pass applies the new keep counts.
pub async fn update(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let input: PolicyInput = cx.body()?;
    let (current, etag) = load(app, id).await?;
    if let Some(e) = &etag {
        cx.check_if_match(e, "the policy")?;
    }
    refuse_duplicate_name(&all(app).await?, &input.name, Some(id))?;
    let mut policy = input.into_policy(id.to_string())?;
    policy.is_system = current.is_system;
    let row = PolicyRow::from(&policy);
    match etag {
        // A system policy never edited before has no row yet.
        None => app.stores.policies.insert(id, &row).await.map_err(changed_meanwhile("the policy"))?,
        Some(etag) => {
            app.stores.policies.replace(id, &row, Some(&etag)).await.map_err(changed_meanwhile("the policy"))?;
        }
    }
    Ok(Reply::json(&view(&policy, &usage(app).await?)).about(id, &policy.name))
}

pub async fn delete(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let (p, _) = load(app, id).await?;
    if p.is_system {
        return Err(ApiError::new(
            Kind::SystemPolicy,
            format!("`{id}` is a system policy and cannot be deleted; edit it instead"),
        ));
    }
    let (dbs, engines) = catalog(app).await?;
    let used = count_usage(&dbs, &engines).get(id).copied().unwrap_or(0);
    // Databases and servers naming it explicitly, even ones now using another through inheritance.
    let named = dbs.iter().filter(|d| d.policy_id.as_deref() == Some(id)).count()
        + engines.iter().filter(|e| e.policy_id.as_deref() == Some(id)).count();
    if used > 0 || named > 0 {
        return Err(ApiError::new(
            Kind::PolicyInUse,
            format!(
                "policy `{}` is used by {} database(s) or server(s); move them to another policy first",
                p.name,
                used.max(named)
            ),
        ));
    }
    if crate::settings::load(app).await?.default_policy_id == id {
        return Err(ApiError::new(
            Kind::PolicyInUse,
            format!("policy `{}` is the default for new databases (settings); choose another default first", p.name),
        ));
    }
    app.stores.policies.delete(id).await?;
    Ok(Reply::json(&serde_json::json!({ "deleted": id, "name": p.name })).about(id, &p.name))
}
