//! The route table: a row is the only home of an operation. It names the method, path, handler,
//! permission, audit action, query parameters, request and response schemas (generated from the
//! types), success status and whether it takes `If-Match`. Dispatch, 404, 405 (with `Allow`), the role
//! check, the audit row and the OpenAPI document are all derived from it.

use std::future::Future;
use std::pin::Pin;

use dilux_domain::user::Permission;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::error::ApiResult;
use crate::http::{Cx, Reply, Verb};
use crate::{access_requests, audit_log, auth, backups, engines, me, policies, probe, settings, status, users};
use crate::{databases, notifications, openapi, restores};

pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;
/// A handler: what it is given, what it answers.
pub type AppFn = for<'a> fn(&'a Cx<'a>) -> LocalBoxFuture<'a, ApiResult<Reply>>;
/// A JSON Schema of a type, as a `$ref` into the document's components.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

#[derive(Clone, Copy)]
pub enum Handler {
    /// Needs nothing configured (liveness, the document itself).
    Static(fn() -> serde_json::Value),
    App(AppFn),
}

pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// `h!(module::function)`: an `async fn(&Cx) -> ApiResult<Reply>` as a row's handler.
macro_rules! h {
    ($f:path) => {
        Handler::App({
            fn call<'a>(cx: &'a Cx<'a>) -> LocalBoxFuture<'a, ApiResult<Reply>> {
                Box::pin($f(cx))
            }
            call
        })
    };
}

#[derive(Clone, Copy)]
pub struct Body {
    pub schema: SchemaFn,
    pub required: bool,
}

#[derive(Clone, Copy)]
pub struct Audit {
    pub action: &'static str,
    pub resource_type: &'static str,
}

pub struct Route {
    pub verb: Verb,
    /// `/api/engines/{id}`: `{…}` segments match any one segment.
    pub path: &'static str,
    /// The OpenAPI operationId.
    pub id: &'static str,
    pub handler: Handler,
    /// `None`: public.
    pub permission: Option<Permission>,
    /// The audit row this call writes, allowed or refused.
    pub audit: Option<Audit>,
    pub summary: &'static str,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    pub body: Option<Body>,
    pub response: Option<SchemaFn>,
    /// The status of success.
    pub ok: u16,
    /// Takes `If-Match` (a stale version answers 412).
    pub if_match: bool,
}

impl Route {
    const fn new(verb: Verb, path: &'static str, id: &'static str, handler: Handler, summary: &'static str) -> Self {
        Route {
            verb,
            path,
            id,
            handler,
            permission: None,
            audit: None,
            summary,
            query: &[],
            body: None,
            response: None,
            ok: 200,
            if_match: false,
        }
    }

    const fn needs(mut self, p: Permission) -> Self {
        self.permission = Some(p);
        self
    }

    const fn audited(mut self, action: &'static str, resource_type: &'static str) -> Self {
        self.audit = Some(Audit { action, resource_type });
        self
    }

    const fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Self {
        self.query = q;
        self
    }

    const fn body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body { schema, required: true });
        self
    }

    const fn optional_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body { schema, required: false });
        self
    }

    const fn returns(mut self, schema: SchemaFn) -> Self {
        self.response = Some(schema);
        self
    }

    const fn ok(mut self, status: u16) -> Self {
        self.ok = status;
        self
    }

    const fn if_match(mut self) -> Self {
        self.if_match = true;
        self
    }
}

use dilux_domain::engine::{CreateDatabase, CreateEngine, UpdateDatabase, UpdateEngine};
use dilux_domain::notify::{ChannelInput, ChannelView, Delivery, NewChannel};
use dilux_domain::policy::PolicyInput;
use dilux_domain::probe::ProbeResult;
use dilux_domain::settings::{
    AccessRequest, AppSettings, ApproveAccess, Preferences, RejectAccess, UpdatePreferences, UpdateSettings,
};
use dilux_domain::user::{CreateUser, UpdateUser, User};
use dilux_domain::{DatabaseView, EngineView};
use Permission::*;
use Verb::{Delete, Get, Post, Put};

const fn r(verb: Verb, path: &'static str, id: &'static str, handler: Handler, summary: &'static str) -> Route {
    Route::new(verb, path, id, handler, summary)
}

const PAGE: (&str, &str) = ("page_size", "items per page");
const ENGINE_TYPE: (&str, &str) = ("engine_type", "mysql, postgresql or sqlserver");
const FROM: (&str, &str) = (
    "from",
    "first day, YYYY-MM-DD (UTC); at most ten years before `to` are searched, and a `from` after `to` finds nothing",
);
const TO: (&str, &str) = ("to", "last day, YYYY-MM-DD (UTC)");
const CURSOR: (&str, &str) = ("cursor", "next_cursor of the previous page");
const BLOB_NAME: (&str, &str) = ("blob_name", "the backup file");

/// The routes; see [`find`] for how overlapping paths are resolved.
pub static ROUTES: &[Route] = &[
    r(Get, "/api/health", "Health", Handler::Static(health), "Liveness and version"),
    r(Get, "/api/openapi.json", "OpenApi", Handler::Static(openapi::document), "This document"),
    r(Get, "/api/auth/config", "AuthConfig", h!(auth::public_config), "How to sign in: dev or Entra ID"),
    r(Post, "/api/auth/dev-token", "DevToken", h!(auth::dev_token), "A sign-in token for any role (dev mode only)")
        .audited("dev_token_issued", "user")
        .body(schema::<auth::DevTokenRequest>),
    // Servers.
    r(Get, "/api/engines", "ListEngines", h!(engines::list), "Servers, with how many databases each has")
        .needs(View)
        .query(&[ENGINE_TYPE])
        .returns(schema::<engines::EngineList>),
    r(Post, "/api/engines", "CreateEngine", h!(engines::create), "Register a server")
        .needs(ManageDatabases)
        .audited("engine_created", "engine")
        .body(schema::<CreateEngine>)
        .returns(schema::<EngineView>)
        .ok(201),
    r(Get, "/api/engines/{id}", "GetEngine", h!(engines::get), "One server").needs(View).returns(schema::<EngineView>),
    r(Put, "/api/engines/{id}", "UpdateEngine", h!(engines::update), "Change a server; rotated credentials apply")
        .needs(ManageDatabases)
        .audited("engine_updated", "engine")
        .body(schema::<UpdateEngine>)
        .returns(schema::<EngineView>)
        .if_match(),
    r(
        Delete,
        "/api/engines/{id}",
        "DeleteEngine",
        h!(engines::delete),
        "Delete a server (cascade=true: with databases)",
    )
    .needs(ManageDatabases)
    .audited("engine_deleted", "engine")
    .query(&[
        ("cascade", "true: also delete its databases"),
        ("delete_backups", "true (with cascade): also delete their backups (admins only)"),
    ]),
    r(Post, "/api/engines/{id}/test", "TestEngine", h!(probe::test_engine), "Test the server's credentials")
        .needs(ManageDatabases)
        .audited("engine_test_connection", "engine")
        .returns(schema::<ProbeResult>),
    r(Post, "/api/engines/{id}/discover", "DiscoverEngine", h!(probe::discover), "List the server's databases")
        .needs(ManageDatabases)
        .audited("engine_discovery", "engine")
        .optional_body(schema::<probe::DiscoverRequest>)
        .returns(schema::<probe::Discovery>),
    // Databases.
    r(Get, "/api/databases", "ListDatabases", h!(databases::list), "Databases, filtered and paged")
        .needs(View)
        .query(&[
            ("search", "text in alias, name, server name or host"),
            ENGINE_TYPE,
            ("engine_id", "one server"),
            ("policy_id", "effective policy"),
            ("enabled", "true or false"),
            ("page", "1-based page number"),
            PAGE,
        ])
        .returns(schema::<databases::DatabaseList>),
    r(Post, "/api/databases", "CreateDatabase", h!(databases::create), "Register a database on a server")
        .needs(ManageDatabases)
        .audited("database_created", "database")
        .body(schema::<CreateDatabase>)
        .returns(schema::<DatabaseView>)
        .ok(201),
    r(Post, "/api/databases/test-connection", "TestConnection", h!(probe::test_connection), "Test unsaved settings")
        .needs(ManageDatabases)
        .audited("database_test_connection", "database")
        .body(schema::<probe::TestConnectionRequest>)
        .returns(schema::<ProbeResult>),
    r(Get, "/api/databases/{id}", "GetDatabase", h!(databases::get), "One database")
        .needs(View)
        .returns(schema::<DatabaseView>),
    r(Put, "/api/databases/{id}", "UpdateDatabase", h!(databases::update), "Change a database (also enable/disable)")
        .needs(ManageDatabases)
        .audited("database_updated", "database")
        .body(schema::<UpdateDatabase>)
        .returns(schema::<DatabaseView>)
        .if_match(),
    r(Delete, "/api/databases/{id}", "DeleteDatabase", h!(databases::delete), "Delete a database's configuration")
        .needs(ManageDatabases)
        .audited("database_deleted", "database")
        .query(&[("delete_backups", "true: also delete its backup files and history (admins only)")]),
    r(Post, "/api/databases/{id}/test", "TestDatabase", h!(probe::test_database), "Test a database's credentials")
        .needs(ManageDatabases)
        .audited("database_test_connection", "database")
        .returns(schema::<ProbeResult>),
    r(Post, "/api/databases/{id}/backup", "TriggerBackup", h!(backups::trigger), "Back up now")
        .needs(TriggerBackup)
        .audited("backup_triggered", "database")
        .returns(schema::<backups::Triggered>)
        .ok(202),
    // Backups.
    r(Get, "/api/backups", "ListBackups", h!(backups::list), "Backup history, newest first")
        .needs(View)
        .query(&[
            ("database_id", "one database, or several separated by commas"),
            ("status", "pending, in_progress, completed, failed or cancelled"),
            ("triggered_by", "manual or scheduler"),
            ENGINE_TYPE,
            FROM,
            TO,
            ("days", "how many days back when `from` is not given (default 90)"),
            PAGE,
            CURSOR,
        ])
        .returns(schema::<backups::BackupPage>),
    r(Get, "/api/backups/files", "ListBackupFiles", h!(backups::files), "Backup files in the container")
        .needs(View)
        .query(&[
            ("prefix", "name prefix, e.g. postgresql/{database_id}/; with database_id, of that database's files"),
            ("database_id", "one database's files"),
            PAGE,
            ("marker", "next_marker of the previous page"),
        ])
        .returns(schema::<backups::FileList>),
    r(Get, "/api/backups/download", "DownloadBackup", h!(backups::download), "A 15-minute read-only download link")
        .needs(DownloadBackups)
        .audited("backup_downloaded", "backup")
        .query(&[BLOB_NAME])
        .returns(schema::<backups::DownloadLink>),
    r(Delete, "/api/backups/delete", "DeleteBackup", h!(backups::delete), "Delete one backup (file and history row)")
        .needs(DeleteBackups)
        .audited("backup_deleted", "backup")
        .query(&[BLOB_NAME, ("force", "true: also when it is its database's newest completed backup")]),
    r(Post, "/api/backups/delete-bulk", "DeleteBackupsBulk", h!(backups::delete_bulk), "Delete several backups")
        .needs(DeleteBackups)
        .audited("backup_deleted_bulk", "backup")
        .body(schema::<backups::BulkDelete>),
    r(Post, "/api/backups/{id}/confirm", "ConfirmBackup", h!(backups::confirm), "Confirm a suspect backup")
        .needs(DeleteBackups)
        .audited("backup_confirmed", "backup")
        .returns(schema::<dilux_domain::BackupResult>),
    r(Get, "/api/backups/stats", "BackupStats", h!(backups::stats), "Counts and stored bytes of a database's backups")
        .needs(View)
        .query(&[("database_id", "the database")])
        .returns(schema::<backups::DatabaseStats>),
    r(Get, "/api/backups/daily", "BackupsPerDay", h!(backups::daily), "Backups per day by state, with stored bytes")
        .needs(View)
        .query(&[("days", "how many days back, today included: 1 to 90 (default 14)")])
        .returns(schema::<dilux_domain::backup::Daily>),
    r(Get, "/api/retention/preview", "RetentionPreview", h!(backups::retention_preview), "What retention would delete")
        .needs(View)
        .query(&[("database_id", "one database")]),
    // Restores.
    r(Post, "/api/backups/restore", "RestoreBackup", h!(restores::request), "Restore a backup into a new database")
        .needs(ManageDatabases)
        .audited("restore_requested", "backup")
        .body(schema::<dilux_domain::restore::RestoreRequest>)
        .returns(schema::<restores::Requested>)
        .ok(202),
    r(Get, "/api/restores", "ListRestores", h!(restores::list), "Restores, newest first")
        .needs(View)
        .query(&[
            ("database_id", "restores of one database's backups"),
            ("status", "pending, in_progress, completed or failed"),
            ("days", "how many days back (default 90)"),
            PAGE,
        ])
        .returns(schema::<restores::RestoreList>),
    r(Get, "/api/restores/{id}", "GetRestore", h!(restores::get), "One restore: status, bytes, duration, error")
        .needs(View)
        .returns(schema::<dilux_domain::restore::RestoreResult>),
    r(
        Get,
        "/api/backups/{id}/verification",
        "GetBackupVerification",
        h!(restores::verification),
        "A backup's manifest and what its restores and drills showed",
    )
    .needs(View)
    .returns(schema::<restores::BackupVerification>),
    // Policies.
    r(Get, "/api/backup-policies", "ListPolicies", h!(policies::list), "Policies with summary and usage")
        .needs(View)
        .returns(schema::<policies::PolicyList>),
    r(Post, "/api/backup-policies", "CreatePolicy", h!(policies::create), "Create a policy")
        .needs(ManageSettings)
        .audited("policy_created", "policy")
        .body(schema::<PolicyInput>)
        .returns(schema::<policies::PolicyView>)
        .ok(201),
    r(Get, "/api/backup-policies/{id}", "GetPolicy", h!(policies::get), "One policy")
        .needs(View)
        .returns(schema::<policies::PolicyView>),
    r(Put, "/api/backup-policies/{id}", "UpdatePolicy", h!(policies::update), "Replace a policy's tiers")
        .needs(ManageSettings)
        .audited("policy_updated", "policy")
        .body(schema::<PolicyInput>)
        .returns(schema::<policies::PolicyView>)
        .if_match(),
    r(Delete, "/api/backup-policies/{id}", "DeletePolicy", h!(policies::delete), "Delete an unused custom policy")
        .needs(ManageSettings)
        .audited("policy_deleted", "policy"),
    // People.
    r(Get, "/api/users", "ListUsers", h!(users::list), "Users").needs(ManageUsers).returns(schema::<users::UserList>),
    r(Post, "/api/users", "CreateUser", h!(users::create), "Pre-register a user by email")
        .needs(ManageUsers)
        .audited("user_created", "user")
        .body(schema::<CreateUser>)
        .returns(schema::<User>)
        .ok(201),
    r(Get, "/api/users/me", "Me", h!(me::me), "Who is signed in, with their preferences")
        .needs(View)
        .returns(schema::<me::Me>),
    r(Get, "/api/users/me/preferences", "GetPreferences", h!(me::preferences), "The caller's UI preferences")
        .needs(View)
        .returns(schema::<Preferences>),
    r(Put, "/api/users/me/preferences", "UpdatePreferences", h!(me::update_preferences), "Change them")
        .needs(View)
        .audited("preferences_updated", "user")
        .body(schema::<UpdatePreferences>)
        .returns(schema::<Preferences>),
    r(Put, "/api/users/{id}", "UpdateUser", h!(users::update), "Change a user's name, role or enabled flag")
        .needs(ManageUsers)
        .audited("user_updated", "user")
        .body(schema::<UpdateUser>)
        .returns(schema::<User>),
    r(Delete, "/api/users/{id}", "DeleteUser", h!(users::delete), "Delete a user")
        .needs(ManageUsers)
        .audited("user_deleted", "user"),
    r(Get, "/api/access-requests", "ListAccessRequests", h!(access_requests::list), "Access requests")
        .needs(ManageUsers)
        .query(&[("status", "pending (default), approved, rejected or all")])
        .returns(schema::<access_requests::RequestList>),
    r(Post, "/api/access-requests/{id}/approve", "ApproveAccessRequest", h!(access_requests::approve), "Approve")
        .needs(ManageUsers)
        .audited("access_request_approved", "access_request")
        .body(schema::<ApproveAccess>)
        .returns(schema::<User>),
    r(Post, "/api/access-requests/{id}/reject", "RejectAccessRequest", h!(access_requests::reject), "Reject")
        .needs(ManageUsers)
        .audited("access_request_rejected", "access_request")
        .optional_body(schema::<RejectAccess>)
        .returns(schema::<AccessRequest>),
    // Audit.
    r(Get, "/api/audit", "ListAudit", h!(audit_log::list), "Audit rows, newest first")
        .needs(ManageSettings)
        .query(&[
            ("action", "one action"),
            ("resource_type", "one resource type"),
            ("resource_id", "one resource"),
            ("user_id", "one user"),
            ("status", "success or failed"),
            FROM,
            TO,
            PAGE,
            CURSOR,
        ])
        .returns(schema::<audit_log::AuditPage>),
    r(Get, "/api/audit/actions", "AuditActions", h!(audit_log::actions), "Every action an audit row can carry")
        .needs(ManageSettings),
    r(Get, "/api/audit/resource-types", "AuditResourceTypes", h!(audit_log::resource_types), "Every resource type")
        .needs(ManageSettings),
    r(Get, "/api/audit/stats", "AuditStats", h!(audit_log::stats), "Audit rows counted by action, type and status")
        .needs(ManageSettings)
        .query(&[("days", "how many days back (default 30)")]),
    // Settings and status.
    r(Get, "/api/settings", "GetSettings", h!(settings::get), "App settings")
        .needs(View)
        .returns(schema::<AppSettings>),
    r(Put, "/api/settings", "UpdateSettings", h!(settings::update), "Change app settings")
        .needs(ManageSettings)
        .audited("settings_updated", "settings")
        .body(schema::<UpdateSettings>)
        .returns(schema::<AppSettings>)
        .if_match(),
    r(Post, "/api/settings/reseal", "ResealSecrets", h!(settings::reseal), "Seal every password again (key rotation)")
        .needs(ManageSettings)
        .audited("secrets_resealed", "settings")
        .returns(schema::<settings::Resealed>),
    r(Get, "/api/system-status", "SystemStatus", h!(status::system_status), "Storage, queue, dumper-host and alerts")
        .needs(View),
    r(
        Post,
        "/api/system-status/soft-delete",
        "EnableSoftDelete",
        h!(status::enable_soft_delete),
        "Turn on soft delete",
    )
    .needs(ManageSettings)
    .audited("storage_soft_delete_enabled", "settings")
    .body(schema::<status::SoftDelete>)
    .returns(schema::<dilux_store::Protection>),
    // Notifications. Viewers see where notifications go (never a secret); only admins change or test it.
    r(Get, "/api/notifications/channels", "ListChannels", h!(notifications::list_channels), "Notification channels")
        .needs(View)
        .returns(schema::<notifications::ChannelList>),
    r(Post, "/api/notifications/channels", "CreateChannel", h!(notifications::create_channel), "Add a channel")
        .needs(ManageSettings)
        .audited("notification_channel_created", "notification_channel")
        .body(schema::<NewChannel>)
        .returns(schema::<ChannelView>)
        .ok(201),
    r(Get, "/api/notifications/channels/{id}", "GetChannel", h!(notifications::get_channel), "One channel")
        .needs(View)
        .returns(schema::<ChannelView>),
    r(Put, "/api/notifications/channels/{id}", "UpdateChannel", h!(notifications::update_channel), "Replace a channel")
        .needs(ManageSettings)
        .audited("notification_channel_updated", "notification_channel")
        .body(schema::<ChannelInput>)
        .returns(schema::<ChannelView>)
        .if_match(),
    r(Delete, "/api/notifications/channels/{id}", "DeleteChannel", h!(notifications::delete_channel), "Delete one")
        .needs(ManageSettings)
        .audited("notification_channel_deleted", "notification_channel"),
    r(Post, "/api/notifications/channels/{id}/test", "TestChannel", h!(notifications::test_channel), "Send a test")
        .needs(ManageSettings)
        .audited("notification_test_sent", "notification_channel")
        .returns(schema::<Delivery>),
    r(Get, "/api/notifications/deliveries", "ListDeliveries", h!(notifications::list_deliveries), "Delivery log")
        .needs(View)
        .query(&[
            ("channel_id", "one channel"),
            ("state", "pending, delivered or failed"),
            ("limit", "newest rows kept, 1 to 500 (default 100)"),
        ])
        .returns(schema::<notifications::DeliveryList>),
];

fn health() -> serde_json::Value {
    serde_json::json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") })
}

fn matches<'a>(pattern: &str, segs: &[&'a str]) -> Option<Vec<&'a str>> {
    let parts: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if parts.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in parts.iter().zip(segs) {
        if p.starts_with('{') {
            params.push(*s);
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

pub enum Found<'a> {
    Route(&'static Route, Vec<&'a str>),
    /// The path exists with these other methods.
    WrongMethod(Vec<Verb>),
    NoRoute,
}

/// The route for a request. A literal segment beats a parameter (`/api/databases/test-connection` is
/// never database "test-connection"), whatever the method: such a path with another method is a 405.
pub fn find<'a>(verb: Verb, path: &'a str) -> Found<'a> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let literals = |r: &Route| r.path.split('/').filter(|p| !p.is_empty() && !p.starts_with('{')).count();
    let candidates: Vec<(&'static Route, Vec<&'a str>)> =
        ROUTES.iter().filter_map(|r| matches(r.path, &segs).map(|p| (r, p))).collect();
    let Some(best) = candidates.iter().map(|(r, _)| literals(r)).max() else { return Found::NoRoute };
    let best: Vec<_> = candidates.into_iter().filter(|(r, _)| literals(r) == best).collect();
    let allowed: Vec<Verb> = best.iter().map(|(r, _)| r.verb).collect();
    match best.into_iter().find(|(r, _)| r.verb == verb) {
        Some((r, p)) => Found::Route(r, p),
        None => Found::WrongMethod(allowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(verb: Verb, path: &str) -> Option<(&'static str, Vec<&str>)> {
        match find(verb, path) {
            Found::Route(r, p) => Some((r.id, p)),
            _ => None,
        }
    }

    #[test]
    fn a_literal_segment_beats_a_parameter() {
        assert_eq!(route(Post, "/api/databases/test-connection"), Some(("TestConnection", vec![])));
        assert_eq!(route(Get, "/api/databases/abc"), Some(("GetDatabase", vec!["abc"])));
        assert_eq!(route(Get, "/api/users/me"), Some(("Me", vec![])));
        // `me` is literal: PUT /api/users/me is not "update user me".
        assert!(matches!(find(Put, "/api/users/me"), Found::WrongMethod(v) if v == vec![Get]));
    }

    #[test]
    fn a_wrong_method_lists_the_allowed_ones_and_unknown_paths_are_no_route() {
        match find(Post, "/api/engines/x") {
            Found::WrongMethod(v) => assert_eq!(v, vec![Get, Put, Delete]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(find(Get, "/api/nothing"), Found::NoRoute));
        assert_eq!(route(Get, "/api/engines/"), Some(("ListEngines", vec![])), "a trailing slash is the same path");
    }

    #[test]
    fn every_operation_is_one_row_with_a_unique_id_and_path() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.verb, r.path)), "{} {} twice", r.verb.as_str(), r.path);
        }
        let ids: std::collections::HashSet<_> = ROUTES.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), ROUTES.len());
        // Every mutating route is audited; reads of the data are not, except downloads.
        for r in ROUTES.iter().filter(|r| r.permission.is_some()) {
            assert_eq!(r.verb != Get || r.id == "DownloadBackup", r.audit.is_some(), "{}", r.id);
        }
    }
}
