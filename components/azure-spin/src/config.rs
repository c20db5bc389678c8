//! The one configuration loader of the components (api, ticks, job-runner): Spin variables through
//! `dilux_domain::config::Variables`, so every missing or wrong value is named the same way.

use dilux_azure::Account;
use dilux_domain::config::{backups_container, ConfigError, Variables};

use crate::stores::AzureStorage;

/// The component's Spin variables.
pub fn variables() -> Variables<'static> {
    Variables::new(|name| spin_sdk::variables::get(name).ok())
}

/// The storage account (`storage_connection_string`) and the backups container.
pub fn storage(vars: &Variables) -> Result<AzureStorage, ConfigError> {
    let conn = vars.required("storage_connection_string", "set the Azure Storage connection string")?;
    let account = Account::from_connection_string(&conn)
        .map_err(|e| ConfigError::new("storage_connection_string", format!("is not usable: {e}")))?;
    Ok(AzureStorage { account, container: backups_container(vars) })
}
