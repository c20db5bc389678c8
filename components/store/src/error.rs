//! What storage and the services behind the API can answer besides success. Each kind maps to one
//! status in the API (in one place: `dilux-api`'s error module).

/// A storage operation that did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write named a record that no longer exists.
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// An insert found the key taken.
    #[error("{what} already exists")]
    Conflict { what: String },
    /// A conditional write found a newer version (ETag mismatch).
    #[error("{what} was changed by someone else")]
    Changed { what: String },
    /// Storage could not be reached or answered an error; the caller may retry.
    #[error("{operation}: {detail}")]
    Unavailable { operation: String, detail: String },
    /// A stored record does not read as its type.
    #[error("{table}/{key}: stored record is unreadable: {detail}")]
    Corrupt { table: String, key: String, detail: String },
    /// The credentials cannot do this (e.g. sign a download link without an account key).
    #[error("{0}")]
    Unsupported(String),
}

/// A service (the dumper-host, the identity provider) that could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Its address or secret is not configured.
    #[error("{0}")]
    NotConfigured(String),
    /// It did not answer, or not usefully.
    #[error("{0}")]
    Unreachable(String),
}
