use crate::Response;

/// A failed storage operation. Never carries a key, SAS or connection string.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AzureError {
    /// The service answered with a non-2xx status.
    #[error("{operation} failed: HTTP {status} {code}: {message}")]
    Service { operation: &'static str, status: u16, code: String, message: String },
    /// The service answered 2xx, but with a body we could not read.
    #[error("{operation}: unexpected response: {detail}")]
    Malformed { operation: &'static str, detail: String },
    /// No usable answer came back, however often it was tried (see [`crate::retry`]).
    #[error("{operation}: could not reach Azure Storage (attempts: {attempts}): {detail}")]
    Unreachable { operation: &'static str, attempts: u32, detail: String },
    /// A request that must not be applied twice was sent, and its answer lost: it may or may not have
    /// been applied, and was not repeated (see [`crate::retry::RetryPolicy::start_once`]).
    #[error("{operation}: Azure Storage's answer was lost, so it may or may not have been applied: {detail}")]
    Unconfirmed { operation: &'static str, detail: String },
    /// The request could not be built from the arguments.
    #[error("invalid argument `{field}`: {detail}")]
    InvalidArgument { field: &'static str, detail: String },
}

impl AzureError {
    pub fn from_response(operation: &'static str, response: &Response) -> Self {
        let text = String::from_utf8_lossy(&response.body);
        // Blob/Queue answer XML, Table answers JSON; both carry a code and a message.
        let (code, message) = if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let err = &v["odata.error"];
            let code = err["code"].as_str().unwrap_or_default().to_string();
            let message = err["message"]["value"].as_str().unwrap_or_default().to_string();
            (code, message)
        } else {
            (
                crate::xml::first(&text, "Code").unwrap_or_default(),
                crate::xml::first(&text, "Message").unwrap_or_default(),
            )
        };
        let code = if code.is_empty() { response.header("x-ms-error-code").unwrap_or("").to_string() } else { code };
        // The first line of Azure's message is the useful part; the rest is request ids and time.
        let message = message.lines().next().unwrap_or("").to_string();
        AzureError::Service { operation, status: response.status, code, message }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request was given up on without a usable answer (worth trying again later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, AzureError::Unreachable { .. } | AzureError::Unconfirmed { .. })
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }
}
