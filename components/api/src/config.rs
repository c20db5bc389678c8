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
    /// `local_storage`: storage is the local emulator (what dev sign-in needs).
    pub fn load(vars: &Variables, local_storage: bool) -> Result<Self, ConfigError> {
        Ok(ApiConfig {
            sealer: dilux_domain::config::sealer(vars)?,
            auth: AuthMode::load(vars, local_storage)?,
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
        let with = |auth: &'static str, anywhere: &'static str| {
            Variables::new(move |n| match n {
                "seal_key" => Some(key.into()),
                "auth_mode" => Some(auth.into()),
                "auth_dev_secret" => Some("s".repeat(40)),
                "dev_auth_anywhere_insecure" => Some(anywhere.into()),
                _ => None,
            })
        };
        let vars = |auth| with(auth, "");
        let c = ApiConfig::load(&vars("dev"), true).unwrap();
        assert!(matches!(c.auth, AuthMode::Dev(_)));
        let e = ApiConfig::load(&vars("ldap"), true).err().unwrap();
        assert_eq!(e.variable, "auth_mode");
        assert!(e.to_string().contains("dev, entra"), "{e}");
        let e = ApiConfig::load(&vars("entra"), true).err().unwrap();
        assert_eq!(e.to_string(), "variable `entra_tenant_id` is not set; auth_mode is entra");
        let e = ApiConfig::load(&Variables::new(|_| None), true).err().unwrap();
        assert_eq!(e.variable, "seal_key");
        // Dev sign-in against real storage: refused, unless the loudly named override is set.
        let e = ApiConfig::load(&vars("dev"), false).err().unwrap();
        assert!(e.to_string().contains("lets anyone sign in as admin"), "{e}");
        assert!(matches!(ApiConfig::load(&with("dev", "true"), false).unwrap().auth, AuthMode::Dev(_)));
        assert_eq!(ApiConfig::load(&with("dev", "yes"), false).err().unwrap().variable, "dev_auth_anywhere_insecure");
    }
}
