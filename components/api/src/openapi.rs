//! The OpenAPI 3.1 document, generated from the route table: paths, permissions, audit actions, and
//! request/response schemas from the very types that parse and answer them.

use serde_json::{json, Map, Value};

use crate::http::Verb;
use crate::routes::{Handler, ROUTES};

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

pub fn document() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut g = settings.into_generator();
    let mut paths = Map::new();
    for route in ROUTES {
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": key_schema() }))
            .collect();
        params.extend(route.query.iter().map(|(name, description)| {
            let (schema, required) = query_schema(route.id, name);
            json!({ "name": name, "in": "query", "required": required, "description": description, "schema": schema })
        }));
        let mut responses = Map::new();
        let mut success = json!({ "description": "success" });
        if let Some(schema) = route.response {
            success["content"] = json!({ "application/json": { "schema": schema(&mut g).to_value() } });
        }
        responses.insert(route.ok.to_string(), success);
        if route.body.is_some() || !route.query.is_empty() || route.path.contains('{') {
            responses.insert("400".into(), error("invalid input; `error.field` names the field"));
        }
        if route.if_match {
            params.push(json!({
                "name": "If-Match", "in": "header", "required": false,
                "description": "the ETag the client read; a newer version answers 412",
                "schema": { "type": "string" },
            }));
            responses.insert("412".into(), error("changed by someone else since it was read: reload and try again"));
        }
        if route.permission.is_some() {
            responses.insert("401".into(), error("not signed in, or the token is invalid"));
            responses.insert("403".into(), error("the caller's role may not do this"));
        }
        // What the handler itself can answer: a named resource that does not exist, a request that
        // conflicts with the state of things, a body over 64 KiB, storage that did not answer.
        if let Handler::App(_) = route.handler {
            let names = |p: &str| route.query.iter().any(|(n, _)| *n == p);
            let named = ["blob_name", "database_id", "engine_id"].iter().any(|p| names(p));
            if route.path.contains('{') || named || route.body.is_some() {
                responses.insert(
                    "404".into(),
                    error("the resource named (in the path, the query or the body) does not exist"),
                );
            }
            if route.verb != Verb::Get || route.body.is_some() {
                responses.insert("409".into(), error("conflicts with the state of things; the message says how"));
            }
            if route.body.is_some() {
                responses.insert("413".into(), error("the body is over 64 KiB"));
            }
            responses.insert("503".into(), error("storage or a service it needs did not answer; try again"));
        }
        let mut operation = json!({
            "operationId": route.id,
            "summary": route.summary,
            "parameters": params,
            "responses": responses,
        });
        match route.permission {
            None => operation["security"] = json!([]),
            Some(p) => operation["x-dilux-permission"] = format!("{p:?}").into(),
        }
        if let Some(a) = route.audit {
            operation["x-dilux-audit"] = json!({ "action": a.action, "resource_type": a.resource_type });
        }
        if let Some(body) = route.body {
            let mut schema = (body.schema)(&mut g).to_value();
            if !body.required {
                // An optional body may also be JSON `null` (the defaults, like no body).
                schema = json!({ "anyOf": [schema, { "type": "null" }] });
            }
            operation["requestBody"] = json!({
                "required": body.required,
                "content": { "application/json": { "schema": schema } },
            });
        }
        let verb = route.verb.as_str().to_ascii_lowercase();
        paths.entry(route.path.to_string()).or_insert_with(|| json!({}))[verb] = operation;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } } }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Dilux Backup API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": concat!(
                "Scheduled, verifiable database backups into Azure Blob Storage. Errors are ",
                "{\"error\": {\"code\", \"message\", \"field\"?}}; 412 means the resource changed meanwhile, ",
                "413 a body over 64 KiB."
            ),
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "Entra ID access token, or a dev token from POST /api/auth/dev-token",
            } },
            "schemas": schemas,
        },
    })
}

/// What a Table key accepts (ids): 1 to 260 characters (a pending user's id is `email:` and an address of up
/// to 254), none of `/ \\ # ?` or control characters.
fn key_schema() -> Value {
    let pattern = "^[^/\\\\#?\\u0000-\\u001f\\u007f-\\u009f]+$";
    json!({ "type": "string", "minLength": 1, "maxLength": 260, "pattern": pattern })
}

/// Query parameters that name records by id: checked like path ids before any handler runs.
pub const ID_PARAMS: [&str; 6] = ["database_id", "engine_id", "policy_id", "resource_id", "user_id", "channel_id"];

/// A query parameter's schema, exactly as its handler reads it, and whether it is required.
fn query_schema(route: &str, name: &str) -> (Value, bool) {
    let int = |max: u64| json!({ "type": "integer", "minimum": 1, "maximum": max });
    let one_of = |values: &[&str]| json!({ "type": "string", "enum": values });
    // Days up to 28: every month has them (a pattern cannot know February).
    let ymd = "(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])";
    let date = json!({ "type": "string", "format": "date", "pattern": format!("^{ymd}$") });
    let schema = match (route, name) {
        (_, "page_size") => int(200),
        (_, "page") => int(u64::from(u32::MAX)),
        ("AuditStats", "days") => int(366),
        ("BackupsPerDay", "days") => int(90),
        ("ListDeliveries", "limit") => int(500),
        ("ListDeliveries", "state") => one_of(&["pending", "delivered", "failed"]),
        (_, "days") => int(3660),
        (_, "from" | "to") => date,
        (_, "engine_type") => one_of(&["mysql", "postgresql", "sqlserver"]),
        ("ListBackups", "status") => one_of(&["pending", "in_progress", "completed", "failed", "cancelled"]),
        ("ListRestores", "status") => one_of(&["pending", "in_progress", "completed", "failed"]),
        ("ListAccessRequests", "status") => one_of(&["pending", "approved", "rejected", "all"]),
        ("ListAudit", "status") => one_of(&["success", "failed"]),
        (_, "triggered_by") => one_of(&["manual", "scheduler"]),
        (_, "enabled" | "cascade" | "delete_backups" | "force") => one_of(&["true", "false"]),
        (_, "blob_name") => json!({ "type": "string", "pattern": dilux_domain::schema::BLOB_NAME }),
        (_, "prefix" | "marker") => {
            json!({ "type": "string", "maxLength": 1024, "pattern": dilux_domain::schema::NO_CONTROL })
        }
        // `next_cursor` of the previous page: `<partition>|<row>`.
        ("ListBackups", "cursor") => json!({ "type": "string", "pattern": format!("^{ymd}\\|.+$") }),
        ("ListAudit", "cursor") => {
            json!({ "type": "string", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})(0[1-9]|1[0-2])\\|.+$" })
        }
        (_, n) if ID_PARAMS.contains(&n) => key_schema(),
        _ => json!({ "type": "string" }),
    };
    let required =
        matches!((route, name), ("DownloadBackup" | "DeleteBackup", "blob_name") | ("BackupStats", "database_id"));
    (schema, required)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_schemas_come_from_the_parsing_types() {
        let doc = super::document();
        let create = &doc["components"]["schemas"]["CreateEngine"];
        assert_eq!(create["additionalProperties"], false, "{create}");
        assert!(create["required"].as_array().unwrap().contains(&"engine_type".into()));
        let put = &doc["paths"]["/api/engines/{id}"]["put"];
        assert_eq!(
            put["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/UpdateEngine"
        );
        assert!(put["responses"]["412"].is_object());
        assert!(put["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "If-Match"));
        // Every $ref resolves.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {name}");
        }
    }
}
