//! Connection tests and discovery: the API asks the dumper-host (which has the database clients) over
//! an authenticated internal endpoint. The request carries a password, so its `Debug` hides it.

use serde::{Deserialize, Serialize};

use crate::{EngineType, ErrorClass};

/// The dumper-host's internal endpoint (Bearer `dumper_token`).
pub const PROBE_PATH: &str = "/internal/dumper/probe";

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    pub engine_type: EngineType,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// Connect to this database (a test of a database); `None` connects to the server's default one.
    #[serde(default)]
    pub database: Option<String>,
    /// Also answer the names of the server's databases.
    #[serde(default)]
    pub list_databases: bool,
    #[serde(default)]
    pub tls: crate::tls::Tls,
}

impl std::fmt::Debug for ProbeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeRequest")
            .field("engine_type", &self.engine_type)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("database", &self.database)
            .field("list_databases", &self.list_databases)
            .finish_non_exhaustive()
    }
}

/// What a connection test found. `message` never contains the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProbeResult {
    pub success: bool,
    #[serde(default)]
    pub error_type: Option<ErrorClass>,
    pub message: String,
    pub duration_ms: u64,
    #[serde(default)]
    pub server_version: Option<String>,
    #[serde(default)]
    pub databases: Vec<String>,
}

/// One database the server has, as discovery shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiscoveredDatabase {
    pub name: String,
    /// Already registered in Dilux for this server.
    pub exists: bool,
    /// A system database (never backed up by default).
    pub system: bool,
    /// The registered database's id, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
}

/// Flags each discovered name against the server's system databases and what is registered.
pub fn classify(engine_type: EngineType, names: &[String], registered: &[(String, String)]) -> Vec<DiscoveredDatabase> {
    let mut out: Vec<DiscoveredDatabase> = names
        .iter()
        .map(|n| {
            let id = registered.iter().find(|(name, _)| name == n).map(|(_, id)| id.clone());
            DiscoveredDatabase {
                name: n.clone(),
                exists: id.is_some(),
                system: engine_type.system_databases().contains(&n.as_str()),
                database_id: id,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.system, &a.name).cmp(&(b.system, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_registered_databases_are_flagged() {
        let names: Vec<String> = ["shop", "postgres", "template1", "crm"].map(String::from).to_vec();
        let got = classify(EngineType::Postgresql, &names, &[("crm".into(), "id-1".into())]);
        let view: Vec<(&str, bool, bool)> = got.iter().map(|d| (d.name.as_str(), d.exists, d.system)).collect();
        assert_eq!(
            view,
            vec![("crm", true, false), ("shop", false, false), ("postgres", false, true), ("template1", false, true)]
        );
        assert_eq!(got[0].database_id.as_deref(), Some("id-1"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let r = ProbeRequest {
            engine_type: EngineType::Mysql,
            host: "h".into(),
            port: 1,
            username: "u".into(),
            password: "s3cr3t-pass".into(),
            database: None,
            list_databases: true,
            tls: Default::default(),
        };
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }
}
