//! Backup policies: the seeded system ones (editable, never deletable) and custom ones, each with its
//! summary (`12h/7d/4w/2m/1y`) and how many databases use it.

use dilux_azure_spin as store;
use dilux_domain::policy::{default_policies, BackupPolicy, PolicyInput, PolicyRow};
use dilux_domain::{tables, Database, Engine};
use std::collections::HashMap;

use crate::http::{check_if_match, json, json_tagged, parse, ApiError, ApiResult};
use crate::Ctx;

const PK: &str = "policy";

/// How many databases use each policy (their own, else their server's, else the default).
fn count_usage(dbs: &[Database], engines: &[Engine]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for d in dbs {
        *counts.entry(store::effective_policy_id(d, engines.iter().find(|e| e.id == d.engine_id))).or_insert(0) += 1;
    }
    counts
}

async fn usage(ctx: &Ctx) -> Result<HashMap<String, usize>, ApiError> {
    Ok(count_usage(&store::all_databases(&ctx.account).await?, &store::all_engines(&ctx.account).await?))
}

fn view(p: &BackupPolicy, used_by: usize) -> serde_json::Value {
    let mut v = serde_json::to_value(p).expect("policies serialize");
    v["summary"] = p.summary().into();
    v["database_count"] = used_by.into();
    v
}

pub async fn list(ctx: &Ctx) -> ApiResult {
    let all = store::policies(&ctx.account).await?;
    let used = usage(ctx).await?;
    let mut policies: Vec<&BackupPolicy> = all.values().collect();
    // System policies first, in their seeded order, then custom ones by name.
    let seeded: Vec<String> = default_policies().into_iter().map(|p| p.id).collect();
    policies.sort_by_key(|p| (seeded.iter().position(|id| *id == p.id).unwrap_or(usize::MAX), p.name.to_lowercase()));
    let out: Vec<serde_json::Value> = policies.iter().map(|p| view(p, used.get(&p.id).copied().unwrap_or(0))).collect();
    Ok(json(200, &serde_json::json!({ "policies": out, "total": out.len() })))
}

async fn load(ctx: &Ctx, id: &str) -> Result<(BackupPolicy, Option<String>), ApiError> {
    if let Some((p, etag)) = store::get_policy(&ctx.account, id).await? {
        return Ok((p, Some(etag)));
    }
    default_policies().into_iter().find(|p| p.id == id).map(|p| (p, None)).ok_or_else(|| ApiError::not_found("backup policy", id))
}

pub async fn get(ctx: &Ctx, id: &str) -> ApiResult {
    let (p, etag) = load(ctx, id).await?;
    let used = usage(ctx).await?;
    Ok(json_tagged(200, &view(&p, used.get(id).copied().unwrap_or(0)), etag.as_deref()))
}

pub async fn create(ctx: &Ctx, body: &[u8]) -> ApiResult {
    let input: PolicyInput = parse(body)?;
    let all = store::policies(&ctx.account).await?;
    if all.values().any(|p| p.name.eq_ignore_ascii_case(input.name.trim())) {
        return Err(ApiError::new(409, "duplicate", format!("a policy named `{}` already exists", input.name.trim())));
    }
    let policy = input.into_policy(uuid::Uuid::new_v4().to_string())?;
    store::insert_or_init(&ctx.account, &ctx.container, tables::POLICIES, PK, &policy.id, &PolicyRow::from(&policy)).await?;
    Ok(json(201, &view(&policy, 0)))
}

/// Replaces a policy's name, description and tiers. System policies may be tuned too (they stay
/// system policies); the next retention pass applies the new keep counts.
pub async fn update(ctx: &Ctx, id: &str, body: &[u8], if_match: Option<&str>) -> ApiResult {
    let input: PolicyInput = parse(body)?;
    let (current, etag) = load(ctx, id).await?;
    if let Some(e) = &etag {
        check_if_match(if_match, e, "policy")?;
    }
    let all = store::policies(&ctx.account).await?;
    if all.values().any(|p| p.id != id && p.name.eq_ignore_ascii_case(input.name.trim())) {
        return Err(ApiError::new(409, "duplicate", format!("a policy named `{}` already exists", input.name.trim())));
    }
    let mut policy = input.into_policy(id.to_string())?;
    policy.is_system = current.is_system;
    match etag {
        // A system policy never edited before has no row yet.
        None => store::insert_or_init(&ctx.account, &ctx.container, tables::POLICIES, PK, id, &PolicyRow::from(&policy)).await.map_err(|e| {
            if e.status() == Some(409) { ApiError::new(412, "changed", "the policy was changed meanwhile; reload and try again") } else { e.into() }
        })?,
        Some(etag) => match store::replace(&ctx.account, tables::POLICIES, PK, id, &PolicyRow::from(&policy), Some(&etag)).await {
            Err(e) if e.status() == Some(412) => return Err(ApiError::new(412, "changed", "the policy was changed meanwhile; reload and try again")),
            other => {
                other?;
            }
        },
    }
    let used = usage(ctx).await?;
    Ok(json(200, &view(&policy, used.get(id).copied().unwrap_or(0))))
}

pub async fn delete(ctx: &Ctx, id: &str) -> ApiResult {
    let (p, _) = load(ctx, id).await?;
    if p.is_system {
        return Err(ApiError::new(409, "system_policy", format!("`{id}` is a system policy and cannot be deleted; edit it instead")));
    }
    let (dbs, engines) = (store::all_databases(&ctx.account).await?, store::all_engines(&ctx.account).await?);
    let used = count_usage(&dbs, &engines).get(id).copied().unwrap_or(0);
    // Databases and servers naming it explicitly, even ones now using another through inheritance.
    let named = dbs.iter().filter(|d| d.policy_id.as_deref() == Some(id)).count() + engines.iter().filter(|e| e.policy_id.as_deref() == Some(id)).count();
    if used > 0 || named > 0 {
        return Err(ApiError::new(409, "policy_in_use", format!("policy `{}` is used by {} database(s) or server(s); move them to another policy first", p.name, used.max(named))));
    }
    if crate::settings::load(ctx).await?.default_policy_id == id {
        return Err(ApiError::new(409, "policy_in_use", format!("policy `{}` is the default for new databases (settings); choose another default first", p.name)));
    }
    store::delete(&ctx.account, tables::POLICIES, PK, id).await?;
    Ok(json(200, &serde_json::json!({ "deleted": id, "name": p.name })))
}
