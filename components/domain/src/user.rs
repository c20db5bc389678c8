//! Roles and what each may do (the permission matrix of the spec).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    /// Whether this role may see login names of servers and databases (nobody sees passwords).
    pub fn sees_credentials(self) -> bool {
        self != Role::Viewer
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read dashboards, configuration (never secrets) and history.
    View,
    /// Create, change and delete servers and databases; restore into a new database.
    ManageDatabases,
    /// Start a backup now.
    TriggerBackup,
    /// Get a download link: a backup is the whole database, so viewers may not take one.
    DownloadBackups,
    /// Destroy backups (one, in bulk, or with their database or server) or move a database to a policy that
    /// keeps less: what cannot be undone stays with admins.
    DeleteBackups,
    ManageUsers,
    ManageSettings,
}

impl Role {
    pub fn can(self, p: Permission) -> bool {
        match p {
            Permission::View => true,
            Permission::ManageDatabases | Permission::TriggerBackup | Permission::DownloadBackups => {
                matches!(self, Role::Admin | Role::Operator)
            }
            Permission::DeleteBackups | Permission::ManageUsers | Permission::ManageSettings => self == Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Permission::*, Role::*};

    #[test]
    fn the_matrix() {
        let rows = [
            (Admin, [true, true, true, true, true, true, true]),
            (Operator, [true, true, true, true, false, false, false]),
            (Viewer, [true, false, false, false, false, false, false]),
        ];
        let all = [View, ManageDatabases, TriggerBackup, DownloadBackups, DeleteBackups, ManageUsers, ManageSettings];
        for (role, allowed) in rows {
            for (p, want) in all.into_iter().zip(allowed) {
                assert_eq!(role.can(p), want, "{role:?} {p:?}");
            }
        }
    }
}

/// A person allowed in (Entra ID sign-in). The id is the token's `oid` claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the newest token they used was issued (each new one is a sign-in, audited as `signin`).
    #[serde(default)]
    pub last_sign_in_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/users`: pre-registers someone by email; their Entra `oid` is learned at first sign-in.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schemars(regex(pattern = crate::schema::EMAIL), length(max = 254))]
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    pub role: Role,
}

/// `PUT /api/users/{id}`.
#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub enabled: Option<bool>,
}

/// The row key of a user registered by email who has not signed in yet.
pub fn pending_user_key(email: &str) -> String {
    format!("email:{}", email.trim().to_lowercase())
}

impl CreateUser {
    pub fn validate(&self) -> Result<(), crate::FieldError> {
        let e = self.email.trim();
        let valid = e.chars().count() <= 254
            && e.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !e.contains(char::is_whitespace));
        if !valid {
            return Err(crate::FieldError::new("email", "must be an email address"));
        }
        // It becomes part of the user's row key.
        if !crate::entity::valid_key(e) {
            return Err(crate::FieldError::new("email", crate::entity::KEY_RULE));
        }
        Ok(())
    }
}

impl User {
    pub fn is_active_admin(&self) -> bool {
        self.enabled && self.role == Role::Admin
    }
}
