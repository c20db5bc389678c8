//! Application settings (one row), per-user preferences, and access requests from people who signed in
//! with Entra ID but are not users yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::user::Role;
use crate::FieldError;

/// App-wide settings, stored as a single row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppSettings {
    /// The UI's default theme for users without a preference.
    pub dark_mode: bool,
    /// Whether someone who signs in without access leaves a request an admin can approve.
    pub access_requests_enabled: bool,
    /// The policy new databases get when neither they nor their server name one.
    pub default_policy_id: String,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_by: Option<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            dark_mode: false,
            access_requests_enabled: true,
            default_policy_id: crate::policy::DEFAULT_POLICY_ID.into(),
            updated_at: None,
            updated_by: None,
        }
    }
}

/// `PUT /api/settings`: fields left out keep their value.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    pub dark_mode: Option<bool>,
    pub access_requests_enabled: Option<bool>,
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub default_policy_id: Option<String>,
}

impl UpdateSettings {
    pub fn apply(&self, s: &mut AppSettings) -> Result<(), FieldError> {
        if let Some(p) = &self.default_policy_id {
            if p.is_empty() {
                return Err(FieldError::new("default_policy_id", "must name a policy"));
            }
            s.default_policy_id = p.clone();
        }
        if let Some(v) = self.dark_mode {
            s.dark_mode = v;
        }
        if let Some(v) = self.access_requests_enabled {
            s.access_requests_enabled = v;
        }
        Ok(())
    }
}

/// One user's UI preferences (also for dev-mode users, who have no users row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Preferences {
    pub dark_mode: bool,
    /// Rows per page in lists (10–100).
    pub page_size: u32,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences { dark_mode: false, page_size: 25 }
    }
}

/// `PUT /api/users/me/preferences`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePreferences {
    pub dark_mode: Option<bool>,
    #[schemars(range(min = 10, max = 100))]
    pub page_size: Option<u32>,
}

impl UpdatePreferences {
    pub fn apply(&self, p: &mut Preferences) -> Result<(), FieldError> {
        if let Some(n) = self.page_size {
            if !(10..=100).contains(&n) {
                return Err(FieldError::new("page_size", "must be between 10 and 100"));
            }
            p.page_size = n;
        }
        if let Some(d) = self.dark_mode {
            p.dark_mode = d;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessRequestStatus {
    Pending,
    Approved,
    Rejected,
}

/// Someone signed in with a valid Entra ID token but is not a user. Keyed by their `oid`, so signing in
/// again does not file a second request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccessRequest {
    /// The Entra ID object id (`oid`) of the requester.
    pub id: String,
    pub email: String,
    pub name: String,
    pub status: AccessRequestStatus,
    pub requested_at: DateTime<Utc>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub resolved_by: Option<String>,
    #[serde(default)]
    pub rejection_reason: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
}

/// `POST /api/access-requests/{id}/approve`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveAccess {
    pub role: Role,
}

/// `POST /api/access-requests/{id}/reject`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectAccess {
    #[serde(default)]
    pub reason: Option<String>,
}

/// The identity provider's published signing keys (JWKS), cached per tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningKeys {
    pub jwks: String,
    pub fetched_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_changes_are_checked_field_by_field() {
        let mut s = AppSettings::default();
        let bad = UpdateSettings { default_policy_id: Some("".into()), dark_mode: Some(true), ..Default::default() };
        assert_eq!(bad.apply(&mut s).unwrap_err().field, "default_policy_id");
        assert!(!s.dark_mode, "nothing applied when a field is invalid");
        UpdateSettings { access_requests_enabled: Some(false), ..Default::default() }.apply(&mut s).unwrap();
        assert!(!s.access_requests_enabled);
    }

    #[test]
    fn page_size_is_bounded() {
        let mut p = Preferences::default();
        assert_eq!(
            UpdatePreferences { page_size: Some(9), dark_mode: Some(true) }.apply(&mut p).unwrap_err().field,
            "page_size"
        );
        assert!(!p.dark_mode);
        UpdatePreferences { page_size: Some(100), dark_mode: None }.apply(&mut p).unwrap();
        assert_eq!(p.page_size, 100);
    }
}
