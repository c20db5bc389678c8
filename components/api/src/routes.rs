//! The route table: one row per operation drives dispatch, 404/405, the permission check, the audit
//! row and the OpenAPI document, so none of them can disagree with the others.

use dilux_domain::user::Permission;
use spin_sdk::http::Method;

/// Every operation the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Health,
    OpenApi,
    AuthConfig,
    DevToken,
    ListEngines,
    CreateEngine,
    GetEngine,
    UpdateEngine,
    DeleteEngine,
    TestEngine,
    DiscoverEngine,
    ListDatabases,
    CreateDatabase,
    TestConnection,
    GetDatabase,
    UpdateDatabase,
    DeleteDatabase,
    TestDatabase,
    TriggerBackup,
    ListBackups,
    ListBackupFiles,
    DownloadBackup,
    DeleteBackup,
    DeleteBackupsBulk,
    BackupStats,
    RetentionPreview,
    ListPolicies,
    CreatePolicy,
    GetPolicy,
    UpdatePolicy,
    DeletePolicy,
    ListUsers,
    CreateUser,
    Me,
    GetPreferences,
    UpdatePreferences,
    UpdateUser,
    DeleteUser,
    ListAccessRequests,
    ApproveAccessRequest,
    RejectAccessRequest,
    ListAudit,
    AuditActions,
    AuditResourceTypes,
    AuditStats,
    GetSettings,
    UpdateSettings,
    SystemStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn of(m: &Method) -> Option<Verb> {
        match m {
            Method::Get => Some(Verb::Get),
            Method::Post => Some(Verb::Post),
            Method::Put => Some(Verb::Put),
            Method::Delete => Some(Verb::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Delete => "delete",
        }
    }
}

/// A request body, by the domain type that parses it (its JSON Schema goes into the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// Required body of this schema.
    Json(&'static str),
    /// Optional body of this schema.
    OptionalJson(&'static str),
}

pub struct Route {
    pub verb: Verb,
    /// `/api/engines/{id}`: `{…}` segments match any one segment.
    pub path: &'static str,
    pub op: Op,
    /// `None`: public.
    pub permission: Option<Permission>,
    /// (action, resource type) of the audit row this call writes, allowed or refused.
    pub audit: Option<(&'static str, &'static str)>,
    pub summary: &'static str,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    pub body: Body,
    /// The status of success.
    pub ok: u16,
}

use Body::{Json, OptionalJson};
use Permission::*;
use Verb::*;

const fn r(verb: Verb, path: &'static str, op: Op, permission: Option<Permission>, audit: Option<(&'static str, &'static str)>, summary: &'static str) -> Route {
    Route { verb, path, op, permission, audit, summary, query: &[], body: Body::None, ok: 200 }
}

const fn q(mut route: Route, query: &'static [(&'static str, &'static str)]) -> Route {
    route.query = query;
    route
}

const fn b(mut route: Route, body: Body) -> Route {
    route.body = body;
    route
}

const fn ok(mut route: Route, status: u16) -> Route {
    route.ok = status;
    route
}

const PAGE: (&str, &str) = ("page_size", "items per page");

/// The routes; see [`find`] for how overlapping paths are resolved.
pub static ROUTES: &[Route] = &[
    r(Get, "/api/health", Op::Health, None, None, "Liveness and version"),
    r(Get, "/api/openapi.json", Op::OpenApi, None, None, "This document"),
    r(Get, "/api/auth/config", Op::AuthConfig, None, None, "How to sign in: dev or Entra ID (tenant, client id, authority)"),
    b(r(Post, "/api/auth/dev-token", Op::DevToken, None, None, "A sign-in token for any role (auth_mode=dev only)"), Json("DevTokenRequest")),
    q(r(Get, "/api/engines", Op::ListEngines, Some(View), None, "Servers, with how many databases each has"), &[("engine_type", "mysql, postgresql or sqlserver")]),
    ok(b(r(Post, "/api/engines", Op::CreateEngine, Some(ManageDatabases), Some(("engine_created", "engine")), "Register a server"), Json("CreateEngine")), 201),
    r(Get, "/api/engines/{id}", Op::GetEngine, Some(View), None, "One server"),
    b(r(Put, "/api/engines/{id}", Op::UpdateEngine, Some(ManageDatabases), Some(("engine_updated", "engine")), "Change a server; rotated credentials apply to the databases using them"), Json("UpdateEngine")),
    q(
        r(Delete, "/api/engines/{id}", Op::DeleteEngine, Some(ManageDatabases), Some(("engine_deleted", "engine")), "Delete a server (refused while it has databases unless cascade=true)"),
        &[("cascade", "true: also delete its databases"), ("delete_backups", "true (with cascade): also delete their backups")],
    ),
    r(Post, "/api/engines/{id}/test", Op::TestEngine, Some(ManageDatabases), Some(("engine_test_connection", "engine")), "Test the server's credentials"),
    b(
        r(Post, "/api/engines/{id}/discover", Op::DiscoverEngine, Some(ManageDatabases), Some(("engine_discovery", "engine")), "List the server's databases; with `add`, register the chosen ones"),
        OptionalJson("DiscoverRequest"),
    ),
    q(
        r(Get, "/api/databases", Op::ListDatabases, Some(View), None, "Databases, filtered and paged"),
        &[
            ("search", "text in alias, name, server name or host"),
            ("engine_type", "mysql, postgresql or sqlserver"),
            ("engine_id", "one server"),
            ("policy_id", "effective policy"),
            ("enabled", "true or false"),
            ("page", "1-based page number"),
            PAGE,
        ],
    ),
    ok(b(r(Post, "/api/databases", Op::CreateDatabase, Some(ManageDatabases), Some(("database_created", "database")), "Register a database on a server"), Json("CreateDatabase")), 201),
    b(
        r(Post, "/api/databases/test-connection", Op::TestConnection, Some(ManageDatabases), Some(("database_test_connection", "database")), "Test connection settings before saving them"),
        Json("TestConnectionRequest"),
    ),
    r(Get, "/api/databases/{id}", Op::GetDatabase, Some(View), None, "One database"),
    b(r(Put, "/api/databases/{id}", Op::UpdateDatabase, Some(ManageDatabases), Some(("database_updated", "database")), "Change a database (also enable/disable)"), Json("UpdateDatabase")),
    q(
        r(Delete, "/api/databases/{id}", Op::DeleteDatabase, Some(ManageDatabases), Some(("database_deleted", "database")), "Delete a database's configuration"),
        &[("delete_backups", "true: also delete its backup files and history")],
    ),
    r(Post, "/api/databases/{id}/test", Op::TestDatabase, Some(ManageDatabases), Some(("database_test_connection", "database")), "Test a database with its own or its server's credentials"),
    ok(r(Post, "/api/databases/{id}/backup", Op::TriggerBackup, Some(TriggerBackup), Some(("backup_triggered", "database")), "Back up now"), 202),
    q(
        r(Get, "/api/backups", Op::ListBackups, Some(View), None, "Backup history, newest first"),
        &[
            ("database_id", "one database, or several separated by commas"),
            ("status", "pending, in_progress, completed, failed or cancelled"),
            ("triggered_by", "manual or scheduler"),
            ("engine_type", "mysql, postgresql or sqlserver"),
            ("from", "first day, YYYY-MM-DD (UTC)"),
            ("to", "last day, YYYY-MM-DD (UTC)"),
            ("days", "how many days back when `from` is not given (default 90)"),
            PAGE,
            ("cursor", "next_cursor of the previous page"),
        ],
    ),
    q(
        r(Get, "/api/backups/files", Op::ListBackupFiles, Some(View), None, "Backup files in the container"),
        &[("prefix", "name prefix, e.g. postgresql/{database_id}/"), ("database_id", "one database's files"), PAGE, ("marker", "next_marker of the previous page")],
    ),
    q(r(Get, "/api/backups/download", Op::DownloadBackup, Some(View), Some(("backup_downloaded", "backup")), "A 15-minute read-only download link"), &[("blob_name", "the backup file")]),
    q(r(Delete, "/api/backups/delete", Op::DeleteBackup, Some(ManageDatabases), Some(("backup_deleted", "backup")), "Delete one backup (file and history row)"), &[("blob_name", "the backup file")]),
    b(r(Post, "/api/backups/delete-bulk", Op::DeleteBackupsBulk, Some(ManageDatabases), Some(("backup_deleted_bulk", "backup")), "Delete several backups; answers per item"), Json("BulkDelete")),
    q(r(Get, "/api/backups/stats", Op::BackupStats, Some(View), None, "Counts and stored bytes of one database's backups"), &[("database_id", "the database")]),
    q(r(Get, "/api/retention/preview", Op::RetentionPreview, Some(View), None, "What retention would delete now, and why the rest stays"), &[("database_id", "one database")]),
    r(Get, "/api/backup-policies", Op::ListPolicies, Some(View), None, "Policies with their summary and how many databases use each"),
    ok(b(r(Post, "/api/backup-policies", Op::CreatePolicy, Some(ManageSettings), Some(("policy_created", "policy")), "Create a policy"), Json("PolicyInput")), 201),
    r(Get, "/api/backup-policies/{id}", Op::GetPolicy, Some(View), None, "One policy"),
    b(r(Put, "/api/backup-policies/{id}", Op::UpdatePolicy, Some(ManageSettings), Some(("policy_updated", "policy")), "Replace a policy's tiers (system policies included)"), Json("PolicyInput")),
    r(Delete, "/api/backup-policies/{id}", Op::DeletePolicy, Some(ManageSettings), Some(("policy_deleted", "policy")), "Delete a policy no database uses (not a system one)"),
    r(Get, "/api/users", Op::ListUsers, Some(ManageUsers), None, "Users"),
    ok(b(r(Post, "/api/users", Op::CreateUser, Some(ManageUsers), Some(("user_created", "user")), "Pre-register a user by email"), Json("CreateUser")), 201),
    r(Get, "/api/users/me", Op::Me, Some(View), None, "Who is signed in, with their preferences"),
    r(Get, "/api/users/me/preferences", Op::GetPreferences, Some(View), None, "The caller's UI preferences"),
    b(r(Put, "/api/users/me/preferences", Op::UpdatePreferences, Some(View), Some(("preferences_updated", "user")), "Change the caller's UI preferences"), Json("UpdatePreferences")),
    b(r(Put, "/api/users/{id}", Op::UpdateUser, Some(ManageUsers), Some(("user_updated", "user")), "Change a user's name, role or enabled flag"), Json("UpdateUser")),
    r(Delete, "/api/users/{id}", Op::DeleteUser, Some(ManageUsers), Some(("user_deleted", "user")), "Delete a user"),
    q(r(Get, "/api/access-requests", Op::ListAccessRequests, Some(ManageUsers), None, "Access requests"), &[("status", "pending (default), approved, rejected or all")]),
    b(
        r(Post, "/api/access-requests/{id}/approve", Op::ApproveAccessRequest, Some(ManageUsers), Some(("access_request_approved", "access_request")), "Approve: the requester becomes a user with this role"),
        Json("ApproveAccess"),
    ),
    b(
        r(Post, "/api/access-requests/{id}/reject", Op::RejectAccessRequest, Some(ManageUsers), Some(("access_request_rejected", "access_request")), "Reject an access request"),
        OptionalJson("RejectAccess"),
    ),
    q(
        r(Get, "/api/audit", Op::ListAudit, Some(ManageSettings), None, "Audit rows, newest first"),
        &[
            ("action", "one action"),
            ("resource_type", "one resource type"),
            ("resource_id", "one resource"),
            ("user_id", "one user"),
            ("status", "success or failed"),
            ("from", "first day, YYYY-MM-DD (UTC)"),
            ("to", "last day, YYYY-MM-DD (UTC)"),
            PAGE,
            ("cursor", "next_cursor of the previous page"),
        ],
    ),
    r(Get, "/api/audit/actions", Op::AuditActions, Some(ManageSettings), None, "Every action an audit row can carry"),
    r(Get, "/api/audit/resource-types", Op::AuditResourceTypes, Some(ManageSettings), None, "Every resource type an audit row can carry"),
    q(r(Get, "/api/audit/stats", Op::AuditStats, Some(ManageSettings), None, "Audit rows counted by action, resource type and status"), &[("days", "how many days back (default 30)")]),
    r(Get, "/api/settings", Op::GetSettings, Some(View), None, "App settings"),
    b(r(Put, "/api/settings", Op::UpdateSettings, Some(ManageSettings), Some(("settings_updated", "settings")), "Change app settings"), Json("UpdateSettings")),
    r(Get, "/api/system-status", Op::SystemStatus, Some(View), None, "Storage, queue, dumper-host, scheduler and missed-backup alerts"),
];

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
    /// The path exists with other methods.
    WrongMethod,
    NoRoute,
}

/// The route for a request. A literal segment beats a parameter (`/api/databases/test-connection` is
/// never database "test-connection"), whatever the method: such a path with another method is a 405.
pub fn find<'a>(method: &Method, segs: &[&'a str]) -> Found<'a> {
    let verb = Verb::of(method);
    let literals = |r: &Route| r.path.split('/').filter(|p| !p.is_empty() && !p.starts_with('{')).count();
    let candidates: Vec<(&'static Route, Vec<&'a str>)> = ROUTES.iter().filter_map(|r| matches(r.path, segs).map(|p| (r, p))).collect();
    let Some(best) = candidates.iter().map(|(r, _)| literals(r)).max() else { return Found::NoRoute };
    match candidates.into_iter().find(|(r, _)| literals(r) == best && Some(r.verb) == verb) {
        Some((r, p)) => Found::Route(r, p),
        None => Found::WrongMethod,
    }
}

/// JSON Schemas of the request bodies, from the types that parse them.
fn body_schemas() -> serde_json::Map<String, serde_json::Value> {
    use dilux_domain::{engine, policy, settings, user};
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut g = settings.into_generator();
    let add = |name: &str, schema: schemars::Schema| (name.to_string(), schema.to_value());
    let list = vec![
        add("DevTokenRequest", g.root_schema_for::<crate::auth::DevTokenRequest>()),
        add("CreateEngine", g.root_schema_for::<engine::CreateEngine>()),
        add("UpdateEngine", g.root_schema_for::<engine::UpdateEngine>()),
        add("DiscoverRequest", g.root_schema_for::<crate::probe::DiscoverRequest>()),
        add("CreateDatabase", g.root_schema_for::<engine::CreateDatabase>()),
        add("UpdateDatabase", g.root_schema_for::<engine::UpdateDatabase>()),
        add("TestConnectionRequest", g.root_schema_for::<crate::probe::TestConnectionRequest>()),
        add("BulkDelete", g.root_schema_for::<crate::backups::BulkDelete>()),
        add("PolicyInput", g.root_schema_for::<policy::PolicyInput>()),
        add("CreateUser", g.root_schema_for::<user::CreateUser>()),
        add("UpdateUser", g.root_schema_for::<user::UpdateUser>()),
        add("UpdatePreferences", g.root_schema_for::<settings::UpdatePreferences>()),
        add("ApproveAccess", g.root_schema_for::<settings::ApproveAccess>()),
        add("RejectAccess", g.root_schema_for::<settings::RejectAccess>()),
        add("UpdateSettings", g.root_schema_for::<settings::UpdateSettings>()),
        // Response models.
        add("EngineView", g.root_schema_for::<dilux_domain::EngineView>()),
        add("DatabaseView", g.root_schema_for::<dilux_domain::DatabaseView>()),
        add("BackupResult", g.root_schema_for::<dilux_domain::BackupResult>()),
        add("BackupPolicy", g.root_schema_for::<policy::BackupPolicy>()),
        add("User", g.root_schema_for::<user::User>()),
        add("AccessRequest", g.root_schema_for::<settings::AccessRequest>()),
        add("AuditLog", g.root_schema_for::<dilux_domain::audit::AuditLog>()),
        add("AppSettings", g.root_schema_for::<settings::AppSettings>()),
        add("Preferences", g.root_schema_for::<settings::Preferences>()),
        add("ProbeResult", g.root_schema_for::<dilux_domain::probe::ProbeResult>()),
        add("DiscoveredDatabase", g.root_schema_for::<dilux_domain::probe::DiscoveredDatabase>()),
    ];
    let mut out = serde_json::Map::new();
    for (name, mut schema) in list {
        // Nested definitions are hoisted next to the schema that used them.
        if let Some(defs) = schema.as_object_mut().and_then(|o| o.remove("components")).and_then(|c| c.get("schemas").cloned()) {
            if let Some(m) = defs.as_object() {
                out.extend(m.clone());
            }
        }
        if let Some(o) = schema.as_object_mut() {
            o.remove("$schema");
            o.remove("definitions");
            o.remove("$defs");
        }
        out.insert(name, schema);
    }
    out
}

/// The response model of an operation, when it answers one.
fn response_schema(op: Op) -> Option<serde_json::Value> {
    let one = |n: &str| serde_json::json!({ "$ref": format!("#/components/schemas/{n}") });
    let list = |key: &str, n: &str| serde_json::json!({ "type": "object", "properties": { key: { "type": "array", "items": one(n) } } });
    Some(match op {
        Op::CreateEngine | Op::GetEngine | Op::UpdateEngine => one("EngineView"),
        Op::ListEngines => list("engines", "EngineView"),
        Op::CreateDatabase | Op::GetDatabase | Op::UpdateDatabase => one("DatabaseView"),
        Op::ListDatabases => list("databases", "DatabaseView"),
        Op::ListBackups => list("backups", "BackupResult"),
        Op::TestEngine | Op::TestDatabase | Op::TestConnection => one("ProbeResult"),
        Op::DiscoverEngine => list("databases", "DiscoveredDatabase"),
        Op::ListPolicies => list("policies", "BackupPolicy"),
        Op::CreatePolicy | Op::GetPolicy | Op::UpdatePolicy => one("BackupPolicy"),
        Op::ListUsers => list("users", "User"),
        Op::CreateUser | Op::UpdateUser => one("User"),
        Op::GetPreferences | Op::UpdatePreferences => one("Preferences"),
        Op::ListAccessRequests => list("access_requests", "AccessRequest"),
        Op::RejectAccessRequest => one("AccessRequest"),
        Op::ApproveAccessRequest => one("User"),
        Op::ListAudit => list("logs", "AuditLog"),
        Op::GetSettings | Op::UpdateSettings => one("AppSettings"),
        _ => return None,
    })
}

/// The OpenAPI 3.1 document, generated from [`ROUTES`].
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let mut params: Vec<serde_json::Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| serde_json::json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        params.extend(route.query.iter().map(|(name, description)| serde_json::json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })));
        let mut responses = serde_json::Map::new();
        let mut success = serde_json::json!({ "description": "success" });
        if let Some(schema) = response_schema(route.op) {
            success["content"] = serde_json::json!({ "application/json": { "schema": schema } });
        }
        responses.insert(route.ok.to_string(), success);
        let error = |d: &str| serde_json::json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        if route.body != Body::None || !route.query.is_empty() || route.path.contains('{') {
            responses.insert("400".into(), error("invalid input; `error.field` names the field"));
        }
        if matches!(route.op, Op::UpdateEngine | Op::UpdateDatabase | Op::UpdatePolicy | Op::UpdateSettings) {
            params.push(serde_json::json!({ "name": "If-Match", "in": "header", "required": false, "description": "the ETag the client read; a newer version answers 412", "schema": { "type": "string" } }));
            responses.insert("412".into(), error("changed by someone else since it was read (If-Match): reload and try again"));
        }
        if route.permission.is_some() {
            responses.insert("401".into(), error("not signed in, or the token is invalid"));
            responses.insert("403".into(), error("the caller's role may not do this"));
        }
        let mut operation = serde_json::json!({
            "operationId": format!("{:?}", route.op),
            "summary": route.summary,
            "parameters": params,
            "responses": responses,
        });
        match route.permission {
            None => operation["security"] = serde_json::json!([]),
            Some(p) => operation["x-dilux-permission"] = format!("{p:?}").into(),
        }
        if let Some((action, resource_type)) = route.audit {
            operation["x-dilux-audit"] = serde_json::json!({ "action": action, "resource_type": resource_type });
        }
        match route.body {
            Body::None => {}
            Body::Json(s) | Body::OptionalJson(s) => {
                operation["requestBody"] = serde_json::json!({
                    "required": matches!(route.body, Body::Json(_)),
                    "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{s}") } } },
                });
            }
        }
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| serde_json::json!({}));
        entry[route.verb.as_str()] = operation;
    }
    let mut schemas = body_schemas();
    schemas.insert(
        "Error".into(),
        serde_json::json!({
            "type": "object",
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } } }
        }),
    );
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Dilux Backup API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Scheduled, verifiable database backups into Azure Blob Storage. Errors are {\"error\": {\"code\", \"message\", \"field\"?}}; 412 means the resource changed meanwhile, 413 a body over 64 KiB.",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "Entra ID access token, or a dev token from POST /api/auth/dev-token" } },
            "schemas": schemas,
        },
    })
}
