//! Access requests: someone signed in through Entra ID without access files one (once); an admin
//! approves it (they become a user with the chosen role) or rejects it.

use chrono::{DateTime, Utc};
use dilux_domain::settings::{AccessRequest, AccessRequestStatus, ApproveAccess, RejectAccess};
use dilux_domain::user::User;
use dilux_store::StoreError;
use serde::Serialize;

use crate::error::{changed_meanwhile, ApiError, ApiResult, Kind};
use crate::http::{Cx, Reply};
use crate::me::key;
use crate::App;

#[derive(Serialize, schemars::JsonSchema)]
pub struct RequestList {
    pub access_requests: Vec<AccessRequest>,
    pub total: usize,
    pub pending: usize,
}

/// Files (once) an access request for someone signed in without access, when settings allow.
/// Answers whether a request is pending for them.
pub async fn file(app: &App, oid: &str, email: &str, name: &str, now: DateTime<Utc>) -> ApiResult<bool> {
    let requests = &app.stores.access_requests;
    if let Some((r, _)) = requests.get(&key(oid)).await? {
        return Ok(r.status == AccessRequestStatus::Pending);
    }
    if !crate::settings::load(app).await?.access_requests_enabled {
        return Ok(false);
    }
    let r = AccessRequest {
        id: key(oid),
        email: email.to_string(),
        name: name.to_string(),
        status: AccessRequestStatus::Pending,
        requested_at: now,
        resolved_at: None,
        resolved_by: None,
        rejection_reason: None,
        role: None,
    };
    match requests.insert(&r.id, &r).await {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Someone who got access another way (pre-registered by email) no longer waits for approval.
pub async fn withdraw(app: &App, oid: &str) -> ApiResult<()> {
    Ok(app.stores.access_requests.delete(&key(oid)).await?)
}

pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let wanted = match crate::http::typed(cx.query, "status").unwrap_or("pending") {
        "all" => None,
        s => Some(
            serde_json::from_value::<AccessRequestStatus>(s.into())
                .map_err(|_| ApiError::field("status", "must be pending, approved, rejected or all"))?,
        ),
    };
    let mut rows: Vec<AccessRequest> = cx
        .app
        .stores
        .access_requests
        .list()
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| wanted.is_none_or(|w| r.status == w))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.requested_at));
    let pending = rows.iter().filter(|r| r.status == AccessRequestStatus::Pending).count();
    Ok(Reply::json(&RequestList { total: rows.len(), access_requests: rows, pending }))
}

async fn pending_request(app: &App, id: &str) -> ApiResult<(AccessRequest, String)> {
    let (r, etag) =
        app.stores.access_requests.get(id).await?.ok_or_else(|| ApiError::not_found("access request", id))?;
    if r.status != AccessRequestStatus::Pending {
        let was = if r.status == AccessRequestStatus::Approved { "approved" } else { "rejected" };
        return Err(ApiError::new(Kind::AlreadyResolved, format!("this request was already {was}")));
    }
    Ok((r, etag))
}

async fn resolve(app: &App, r: &AccessRequest, etag: &str) -> ApiResult<()> {
    app.stores.access_requests.replace(&r.id, r, Some(etag)).await.map_err(changed_meanwhile("the request"))?;
    Ok(())
}

/// Approving creates the user (their id is the requester's `oid`), then marks the request.
pub async fn approve(cx: &Cx<'_>) -> ApiResult<Reply> {
    let who = cx.who()?;
    let input: ApproveAccess = cx.body()?;
    let (mut r, etag) = pending_request(cx.app, cx.id()).await?;
    let user = User {
        id: r.id.clone(),
        email: r.email.clone(),
        name: r.name.clone(),
        role: input.role,
        enabled: true,
        created_at: cx.now,
        last_sign_in_at: None,
    };
    match cx.app.stores.users.insert(&user.id, &user).await {
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::new(Kind::Duplicate, format!("{} is already a user", r.email)))
        }
        other => other?,
    }
    r.status = AccessRequestStatus::Approved;
    r.resolved_at = Some(cx.now);
    r.resolved_by = Some(who.email.clone());
    r.role = Some(input.role);
    resolve(cx.app, &r, &etag).await?;
    Ok(Reply::json(&user).about(&r.id, &r.email))
}

pub async fn reject(cx: &Cx<'_>) -> ApiResult<Reply> {
    let who = cx.who()?;
    let input: RejectAccess = cx.optional_body()?;
    if input.reason.as_deref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::field("reason", "must be at most 500 characters"));
    }
    let (mut r, etag) = pending_request(cx.app, cx.id()).await?;
    r.status = AccessRequestStatus::Rejected;
    r.resolved_at = Some(cx.now);
    r.resolved_by = Some(who.email.clone());
    r.rejection_reason = input.reason;
    resolve(cx.app, &r, &etag).await?;
    Ok(Reply::json(&r).about(&r.id, &r.email))
}
