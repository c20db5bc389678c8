//! The subset of the Spin manifest (v2) the local runner needs: application variables, HTTP triggers,
//! components with their sources, variables, files and outbound hosts, and our own `tool.dumper-host`
//! tables (which Spin ignores) for timer-fired routes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("manifest {path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("manifest: trigger for route `{route}` names component `{component}`, which is not defined")]
    UnknownComponent { route: String, component: String },
    #[error(
        "variable `{0}` is required: set the environment variable SPIN_VARIABLE_{upper}",
        upper = .0.to_uppercase()
    )]
    MissingVariable(String),
    #[error(
        "component `{component}` variable `{variable}` refers to `{{{{ {reference} }}}}`, \
         which is not an application variable"
    )]
    UnknownReference { component: String, variable: String, reference: String },
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize, Default)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Deserialize, Default)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
}

#[derive(Debug, Deserialize)]
pub struct Component {
    pub source: PathBuf,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<FileMount>,
    #[serde(default)]
    pub tool: ToolTables,
}

#[derive(Debug, Deserialize, Clone)]
pub struct FileMount {
    pub source: PathBuf,
    pub destination: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct ToolTables {
    #[serde(default, rename = "dumper-host")]
    pub dumper_host: DumperHostTable,
}

#[derive(Debug, Deserialize, Default)]
pub struct DumperHostTable {
    #[serde(default)]
    pub ticks: Vec<Tick>,
}

/// A route the dumper-host calls on a timer (production: a Kubernetes CronJob does).
#[derive(Debug, Deserialize, Clone)]
pub struct Tick {
    pub route: String,
    pub every_seconds: u64,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<(Self, PathBuf), ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })?;
        let m: Manifest = toml::from_str(&text).map_err(|source| ManifestError::Parse { path: path.into(), source })?;
        for t in &m.trigger.http {
            if !m.component.contains_key(&t.component) {
                return Err(ManifestError::UnknownComponent { route: t.route.clone(), component: t.component.clone() });
            }
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((m, base))
    }

    /// Application variable values: `SPIN_VARIABLE_<NAME>` from `env` (as Spin's environment
    /// provider does), else the default; a required variable with neither is an error.
    pub fn resolve_app_variables(
        &self,
        env: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, ManifestError> {
        let mut out = HashMap::new();
        for (name, decl) in &self.variables {
            let from_env = env.get(&format!("SPIN_VARIABLE_{}", name.to_uppercase())).cloned();
            match from_env.or_else(|| decl.default.clone()) {
                Some(v) => {
                    out.insert(name.clone(), v);
                }
                None if decl.required => return Err(ManifestError::MissingVariable(name.clone())),
                None => {}
            }
        }
        Ok(out)
    }

    /// A component's own variables with `{{ app_variable }}` templates expanded.
    pub fn component_variables(
        &self,
        component: &str,
        app: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, ManifestError> {
        let mut out = HashMap::new();
        let Some(c) = self.component.get(component) else { return Ok(out) };
        for (name, template) in &c.variables {
            out.insert(
                name.clone(),
                expand(template, app).map_err(|UnknownVariable(reference)| ManifestError::UnknownReference {
                    component: component.into(),
                    variable: name.clone(),
                    reference,
                })?,
            );
        }
        Ok(out)
    }
}

/// A `{{ name }}` that names no variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variable `{0}`")]
pub struct UnknownVariable(pub String);

/// Expands `{{ name }}` occurrences.
pub fn expand(template: &str, vars: &HashMap<String, String>) -> Result<String, UnknownVariable> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        out.push_str(vars.get(name).ok_or_else(|| UnknownVariable(name.to_string()))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Spin route matching: exact, or a `/...` wildcard suffix. More specific (longer) routes win.
pub fn route_matches(route: &str, path: &str) -> bool {
    match route.strip_suffix("/...") {
        Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty(),
        None => path == route,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = r#"
spin_manifest_version = 2
[application]
name = "x"
[variables]
key = { required = true, secret = true }
mode = { default = "dev" }
[[trigger.http]]
route = "/api/..."
component = "api"
[component.api]
source = "a.wasm"
allowed_outbound_hosts = ["http://127.0.0.1:*"]
[component.api.variables]
conn = "k={{ key }};m={{mode}}"
[[component.api.tool.dumper-host.ticks]]
route = "/internal/tick"
every_seconds = 60
"#;

    #[test]
    fn resolves_variables_from_env_and_defaults() {
        let m: Manifest = toml::from_str(M).unwrap();
        let err = m.resolve_app_variables(&HashMap::new()).unwrap_err();
        assert_eq!(err.to_string(), "variable `key` is required: set the environment variable SPIN_VARIABLE_KEY");
        let env = HashMap::from([("SPIN_VARIABLE_KEY".to_string(), "s".to_string())]);
        let app = m.resolve_app_variables(&env).unwrap();
        assert_eq!(m.component_variables("api", &app).unwrap()["conn"], "k=s;m=dev");
        assert_eq!(m.component["api"].tool.dumper_host.ticks[0].every_seconds, 60);
    }

    #[test]
    fn routes_match_like_spin() {
        assert!(route_matches("/api/...", "/api"));
        assert!(route_matches("/api/...", "/api/engines/1"));
        assert!(!route_matches("/api/...", "/apix"));
        assert!(route_matches("/...", "/index.html"));
        assert!(route_matches("/internal/tick", "/internal/tick"));
        assert_eq!(expand("{{ nope }}", &HashMap::new()), Err(UnknownVariable("nope".into())));
    }
}
