//! Error vocabulary shared by every layer.
//!
//! Doctrine: an error a user can see names what went wrong (the field, the operation, the class) and
//! what to do next; it never contains a password, key or connection string.

use serde::{Deserialize, Serialize};

/// A rejected input: which field, and why. Rendered by the API as a 400.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Why a backup (or connection test) failed, as a user acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ErrorClass {
    /// Wrong user name or password.
    AuthFailed,
    /// The database does not exist on that server.
    NotFound,
    /// The user may connect but not read everything.
    PermissionDenied,
    /// Nothing answered at that host and port.
    Unreachable,
    /// The server stopped answering (connect timeout, or no progress for too long).
    Timeout,
    /// TLS was required or failed.
    Tls,
    /// The dump tool failed for another reason (its message says which).
    ToolFailed,
    /// Writing to Azure Storage failed.
    StorageFailed,
    /// The job could not be run as queued (missing database, bad configuration).
    InvalidJob,
    /// A backup's bytes are not the ones stored (checksum mismatch, truncated or damaged stream).
    Corrupt,
}

impl ErrorClass {
    /// What the user should do about it.
    pub fn hint(self) -> &'static str {
        match self {
            ErrorClass::AuthFailed => "check the user name and password of the database or its server",
            ErrorClass::NotFound => "check the database name; it may have been dropped or renamed",
            ErrorClass::PermissionDenied => {
                "grant the backup user read access to every object (and LOCK TABLES / EVENT on MariaDB)"
            }
            ErrorClass::Unreachable => "check host, port and firewall rules between the dumper and the server",
            ErrorClass::Timeout => "the server did not answer in time; check its load and network path",
            ErrorClass::Tls => "check the server's TLS requirement and certificates",
            ErrorClass::ToolFailed => "read the tool's message; the dump tool failed",
            ErrorClass::StorageFailed => "check the storage account, its network rules and the dumper's identity",
            ErrorClass::Corrupt => "the backup file was altered or damaged; restore another backup",
            ErrorClass::InvalidJob => {
                "the database's configuration changed or was deleted; fix it and run the backup again"
            }
        }
    }

    /// Classifies a dump or client tool's stderr. Pure: tested against real tool messages.
    pub fn from_tool_stderr(stderr: &str) -> ErrorClass {
        let s = stderr.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
        if has(&[
            "password authentication failed",
            "error 1045",
            "(using password:",
            "no password supplied",
            "authentication failed",
        ]) {
            ErrorClass::AuthFailed
        } else if has(&[
            "ssl was required",
            "error 2026",
            "ssl connection error",
            "ssl error",
            "certificate verify failed",
            "does not match host name",
            "no encryption",
            "ssl connection is required",
            "insecure transport",
        ]) {
            ErrorClass::Tls
        } else if has(&["does not exist", "error 1049", "unknown database"]) {
            ErrorClass::NotFound
        } else if has(&["permission denied", "error 1044", "error 1142", "error 1227", "access denied"]) {
            ErrorClass::PermissionDenied
        } else if has(&["timeout expired", "timed out", "error 2013", "(110)", "lost connection"]) {
            ErrorClass::Timeout
        } else if has(&[
            // The server went away mid-dump (crashed, restarted, shut down).
            "server closed the connection unexpectedly",
            "terminating connection due to",
            "connection refused",
            "could not translate host name",
            "error 2002",
            "error 2005",
            "no route to host",
            "name or service not known",
            "could not connect",
            "can't connect",
        ]) {
            ErrorClass::Unreachable
        } else {
            ErrorClass::ToolFailed
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The serde name is the user-facing name.
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::{self, *};

    #[test]
    fn classifies_real_tool_messages() {
        let cases = [
            (
                concat!(
                    "pg_dump: error: connection to server at \"127.0.0.1\", port 5432 ",
                    "failed: FATAL:  password authentication failed for user \"u\""
                ),
                AuthFailed,
            ),
            (
                concat!(
                    "mariadb-dump: Got error: 1045: \"Access denied for user 'u'@'localhost' ",
                    "(using password: YES)\" when trying to connect"
                ),
                AuthFailed,
            ),
            (
                concat!(
                    "pg_dump: error: connection to server at \"127.0.0.1\", port ",
                    "5432 failed: FATAL:  database \"nope\" does not exist"
                ),
                NotFound,
            ),
            ("mariadb-dump: Got error: 1049: \"Unknown database 'nope'\" when selecting the database", NotFound),
            ("pg_dump: error: query failed: ERROR:  permission denied for table secrets", PermissionDenied),
            ("mariadb-dump: Got error: 1044: \"Access denied for user 'u'@'%' to database 'd'\"", PermissionDenied),
            ("pg_dump: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused", Unreachable),
            ("mariadb-dump: Got error: 2002: \"Can't connect to server on '127.0.0.1' (115)\"", Unreachable),
            ("pg_dump: error: connection to server at \"10.0.0.1\", port 5432 failed: timeout expired", Timeout),
            ("mariadb-dump: Got error: 2013: \"Lost connection to server at 'handshake'\"", Timeout),
            (
                concat!(
                    "pg_dump: error: Dumping the contents of table \"t\" failed: PQgetResult() failed.\n",
                    "pg_dump: detail: Error message from server: server closed the connection unexpectedly"
                ),
                Unreachable,
            ),
            (
                concat!(
                    "psql: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  pg_hba.conf ",
                    "rejects connection for host \"127.0.0.1\", user \"postgres\", database \"postgres\", no encryption"
                ),
                Tls,
            ),
            (
                concat!(
                    "psql: error: connection to server at \"127.0.0.1\", port 5432 failed: ",
                    "SSL error: certificate verify failed"
                ),
                Tls,
            ),
            ("ERROR 2026 (HY000): TLS/SSL error: SSL is required, but the server does not support it", Tls),
            ("ERROR 2026 (HY000): TLS/SSL error: self-signed certificate in certificate chain", Tls),
            (
                concat!(
                    "pg_dump: error: server version: 18.0; pg_dump version: ",
                    "15.4 aborting because of server version mismatch"
                ),
                ToolFailed,
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(ErrorClass::from_tool_stderr(msg), want, "{msg}");
        }
        assert_eq!(AuthFailed.to_string(), "AuthFailed");
    }
}
