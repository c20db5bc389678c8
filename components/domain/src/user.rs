//! Roles and what each may do (the permission matrix of the spec).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read dashboards, configuration (never secrets) and history.
    View,
    /// Create, change and delete servers and databases; delete backups.
    ManageDatabases,
    /// Start a backup now.
    TriggerBackup,
    ManageUsers,
    ManageSettings,
}

impl Role {
    pub fn can(self, p: Permission) -> bool {
        match p {
            Permission::View => true,
            Permission::ManageDatabases | Permission::TriggerBackup => matches!(self, Role::Admin | Role::Operator),
            Permission::ManageUsers | Permission::ManageSettings => self == Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Permission::*, Role::*};

    #[test]
    fn the_matrix() {
        let rows = [(Admin, [true, true, true, true, true]), (Operator, [true, true, true, false, false]), (Viewer, [true, false, false, false, false])];
        for (role, allowed) in rows {
            for (p, want) in [View, ManageDatabases, TriggerBackup, ManageUsers, ManageSettings].into_iter().zip(allowed) {
                assert_eq!(role.can(p), want, "{role:?} {p:?}");
            }
        }
    }
}

/// A person allowed in (Entra ID sign-in). The id is the token's `oid` claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}
