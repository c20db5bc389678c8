//! Sans-io Azure Storage REST.
//!
//! Every operation is a pure function from arguments to a signed [`Request`], and a pure parser from a
//! [`Response`] to a typed result. No HTTP client, no runtime: the Spin components send requests over
//! `wasi:http`, the dumper-host over reqwest, and tests can inspect requests without a network.
//! Errors follow one doctrine: [`AzureError`] says which operation failed, with the service's status and
//! error code, never a credential.

mod account;
pub mod blob;
mod error;
pub mod queue;
pub mod retry;
mod sas;
mod sign;
pub mod table;
mod xml;

pub use account::{Account, ConnectionStringError, Credentials};
pub use error::AzureError;
pub use retry::{is_retryable_status, RetryPolicy};
pub use sas::{BlobSas, SasPermissions};

/// API version sent with every request (Azurite 3.3x and Azure both accept it).
pub const API_VERSION: &str = "2021-08-06";

/// An HTTP request ready to send: the URL is exactly the string that was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What came back, as the transport received it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Turns a non-2xx answer into an [`AzureError`] naming `operation`.
    pub fn check(self, operation: &'static str) -> Result<Response, AzureError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(AzureError::from_response(operation, &self))
        }
    }
}
