//! The API's own configuration (storage comes from `dilux_azure_spin::config`), read once per request
//! from Spin variables (or any lookup, in tests), with errors that name the variable and say what to set.

use dilux_domain::config::{ConfigError, Variables};
use dilux_domain::Sealer;

use crate::auth::AuthMode;

pub struct ApiConfig {
    pub sealer: Sealer,
    pub auth: AuthMode,
    /// Where the dumper-host's probe is, and its shared secret; connection tests need both.
    pub dumper_url: Option<String>,
    pub dumper_token: Option<String>,
}

impl ApiConfig {
    pub fn load(vars: &Variables) -> Result<Self, ConfigError> {
        Ok(ApiConfig {
            sealer: dilux_domain::config::sealer(vars)?,
            auth: AuthMode::load(vars)?,
            dumper_url: vars.optional("dumper_url"),
            dumper_token: vars.optional("dumper_token"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_wrong_variable_is_named() {
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let vars = |auth: &'static str| {
            Variables::new(move |n| match n {
                "seal_key" => Some(key.into()),
                "auth_mode" => Some(auth.into()),
                "auth_dev_secret" => Some("s".repeat(40)),
                _ => None,
            })
        };
        let c = ApiConfig::load(&vars("dev")).unwrap();
        assert!(matches!(c.auth, AuthMode::Dev(_)));
        let e = ApiConfig::load(&vars("ldap")).err().unwrap();
        assert_eq!(e.variable, "auth_mode");
        assert!(e.to_string().contains("dev, entra"), "{e}");
        let e = ApiConfig::load(&vars("entra")).err().unwrap();
        assert_eq!(e.to_string(), "variable `entra_tenant_id` is not set; auth_mode is entra");
        let e = ApiConfig::load(&Variables::new(|_| None)).err().unwrap();
        assert_eq!(e.variable, "seal_key");
    }
}
