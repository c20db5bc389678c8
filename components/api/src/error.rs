//! The API's error doctrine: every failure has a [`Kind`], from which its status and its code follow;
//! the message says what happened and what to do; a 400 names the field. The body is always
//! `{"error": {"code", "message", "field"?}}`. Storage errors map to statuses here and nowhere else.

use dilux_domain::config::ConfigError;
use dilux_domain::FieldError;
use dilux_store::{ServiceError, StoreError};

/// What went wrong, as a client can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// 400: a field is wrong; `field` names it.
    InvalidField,
    /// 400: no body, or not JSON at all.
    InvalidBody,
    /// 401: no token.
    Unauthenticated,
    /// 401: a token that does not verify.
    InvalidToken,
    /// 403: the role may not do this.
    Forbidden,
    AccountDisabled,
    /// 403: signed in without access; an access request waits for an admin.
    AccessRequested,
    NoAccess,
    /// 404: the resource does not exist.
    NotFound,
    /// 404: no such route.
    NoRoute,
    /// 405: the path exists with other methods.
    MethodNotAllowed,
    /// 409s: the request conflicts with the state of things.
    Duplicate,
    AlreadyResolved,
    BackupInProgress,
    BackupRunning,
    RestoreInProgress,
    /// A restore of chosen tables asked of a backup that is not a PostgreSQL custom archive.
    NotSelective,
    HasDatabases,
    /// A notification channel's kind cannot change.
    KindFixed,
    LastAdmin,
    NoCredentials,
    Orphaned,
    PolicyInUse,
    SystemPolicy,
    UnreadableSecret,
    /// 412: changed by someone else since the client read it.
    Changed,
    /// 413
    BodyTooLarge,
    /// 500: the deployment's configuration is wrong.
    Misconfigured,
    TokenError,
    /// 501: the storage credentials cannot sign download links.
    SasUnavailable,
    /// 503s: something the API depends on did not answer; retrying may help.
    StorageUnavailable,
    DumperUnreachable,
    IdentityProviderUnreachable,
}

impl Kind {
    pub fn status(self) -> u16 {
        use Kind::*;
        match self {
            InvalidField | InvalidBody => 400,
            Unauthenticated | InvalidToken => 401,
            Forbidden | AccountDisabled | AccessRequested | NoAccess => 403,
            NotFound | NoRoute => 404,
            MethodNotAllowed => 405,
            Duplicate | AlreadyResolved | BackupInProgress | BackupRunning | RestoreInProgress | NotSelective
            | HasDatabases | KindFixed | LastAdmin | NoCredentials | Orphaned | PolicyInUse | SystemPolicy
            | UnreadableSecret => 409,
            Changed => 412,
            BodyTooLarge => 413,
            Misconfigured | TokenError => 500,
            SasUnavailable => 501,
            StorageUnavailable | DumperUnreachable | IdentityProviderUnreachable => 503,
        }
    }

    pub fn code(self) -> &'static str {
        use Kind::*;
        match self {
            InvalidField => "invalid_field",
            InvalidBody => "invalid_body",
            Unauthenticated => "unauthenticated",
            InvalidToken => "invalid_token",
            Forbidden => "forbidden",
            AccountDisabled => "account_disabled",
            AccessRequested => "access_requested",
            NoAccess => "no_access",
            NotFound => "not_found",
            NoRoute => "no_route",
            MethodNotAllowed => "method_not_allowed",
            Duplicate => "duplicate",
            AlreadyResolved => "already_resolved",
            BackupInProgress => "backup_in_progress",
            BackupRunning => "backup_running",
            RestoreInProgress => "restore_in_progress",
            NotSelective => "not_selective",
            HasDatabases => "has_databases",
            KindFixed => "kind_fixed",
            LastAdmin => "last_admin",
            NoCredentials => "no_credentials",
            Orphaned => "orphaned",
            PolicyInUse => "policy_in_use",
            SystemPolicy => "system_policy",
            UnreadableSecret => "unreadable_secret",
            Changed => "changed",
            BodyTooLarge => "body_too_large",
            Misconfigured => "misconfigured",
            TokenError => "token_error",
            SasUnavailable => "sas_unavailable",
            StorageUnavailable => "storage_unavailable",
            DumperUnreachable => "dumper_unreachable",
            IdentityProviderUnreachable => "identity_provider_unreachable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: Kind,
    pub message: String,
    pub field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into(), field: None }
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(Kind::NotFound, format!("{what} `{id}` does not exist"))
    }

    /// A job (`what`: backup, restore) whose message did not reach the queue, its row taken back.
    pub fn not_queued(what: &str, e: StoreError) -> Self {
        let e = ApiError::from(e);
        ApiError::new(e.kind, format!("the {what} was not queued, nothing will run: {}", e.message))
    }

    /// The same error, naming the field it is about.
    pub fn on_field(mut self, field: &str) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 404 for an id in the body that names nothing: the field is right in form, but wrong in fact.
    pub fn unknown(field: &str, message: impl Into<String>) -> Self {
        let message = format!("{field}: {}", message.into());
        ApiError { kind: Kind::NotFound, message, field: Some(field.into()) }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = format!("{field}: {}", message.into());
        ApiError { kind: Kind::InvalidField, message, field: Some(field.into()) }
    }

    /// 412: `what` ("the server") changed since the client read it.
    pub fn changed(what: &str) -> Self {
        ApiError::new(
            Kind::Changed,
            format!("{what} was changed by someone else since you loaded it; reload and try again"),
        )
    }

    pub fn config(message: impl std::fmt::Display) -> Self {
        ApiError::new(Kind::Misconfigured, format!("the API is misconfigured: {message}"))
    }

    /// The error body.
    pub fn body(&self) -> serde_json::Value {
        let mut err = serde_json::json!({ "code": self.code(), "message": self.message });
        if let Some(f) = &self.field {
            err["field"] = f.clone().into();
        }
        serde_json::json!({ "error": err })
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::field(&e.field, e.message)
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::config(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => {
                ApiError::new(Kind::NotFound, format!("it was deleted meanwhile ({what}); reload and try again"))
            }
            StoreError::Conflict { what } => ApiError::new(Kind::Duplicate, format!("{what}; reload and try again")),
            StoreError::Changed { .. } => ApiError::changed("it"),
            StoreError::Unsupported(m) => ApiError::new(Kind::SasUnavailable, m),
            e @ (StoreError::Unavailable { .. } | StoreError::Corrupt { .. }) => {
                // Storage details stay in the log; the client learns what failed and that it may retry.
                crate::log::event("storage_error", &[("error", &e)]);
                ApiError::new(
                    Kind::StorageUnavailable,
                    format!("Azure Storage could not complete the request ({e}); try again"),
                )
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotConfigured(m) => ApiError::config(m),
            ServiceError::Unreachable(m) => ApiError::new(Kind::DumperUnreachable, m),
        }
    }
}

/// A conditional write's 412 (or an insert that lost a race) as "changed meanwhile" about `what`.
pub fn changed_meanwhile(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::Changed { .. } | StoreError::Conflict { .. } => ApiError::changed(what),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_their_statuses_in_one_place() {
        let what = || "engine `e`".to_string();
        assert_eq!(ApiError::from(StoreError::NotFound { what: what() }).status(), 404);
        assert_eq!(ApiError::from(StoreError::Conflict { what: what() }).status(), 409);
        assert_eq!(ApiError::from(StoreError::Changed { what: what() }).status(), 412);
        let down = StoreError::Unavailable { operation: "get".into(), detail: "reset".into() };
        let e = ApiError::from(down);
        assert_eq!((e.status(), e.code()), (503, "storage_unavailable"));
        assert!(e.message.contains("try again"), "{}", e.message);
    }

    #[test]
    fn a_field_error_names_the_field_in_code_message_and_body() {
        let e = ApiError::field("port", "must be between 1 and 65535");
        let b = e.body();
        assert_eq!(b["error"]["code"], "invalid_field");
        assert_eq!(b["error"]["field"], "port");
        assert_eq!(b["error"]["message"], "port: must be between 1 and 65535");
    }
}
