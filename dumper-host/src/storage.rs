//! Sends `dilux-azure` requests over reqwest, retrying what Azure and Azurite call transient.

use std::time::Duration;

use dilux_azure::{is_retryable_status, Account, AzureError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Azure(#[from] AzureError),
    #[error("{operation}: could not reach Azure Storage after {attempts} attempts: {detail}")]
    Transport { operation: &'static str, attempts: u32, detail: String },
}

impl StorageError {
    pub fn azure(&self) -> Option<&AzureError> {
        match self {
            StorageError::Azure(e) => Some(e),
            _ => None,
        }
    }
}

/// One storage account and an HTTP client for it.
#[derive(Clone)]
pub struct Storage {
    pub account: Account,
    client: reqwest::Client,
}

const ATTEMPTS: u32 = 5;

impl Storage {
    pub fn new(account: Account) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a TLS-capable reqwest client builds");
        Storage { account, client }
    }

    /// Sends `req`, retrying 408/429/5xx and connection failures with exponential backoff.
    /// Non-2xx answers that are not transient come back as `Ok(Response)` for the caller's parser.
    pub async fn send(&self, operation: &'static str, req: Request) -> Result<Response, StorageError> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 2))).await;
            }
            let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("methods we build are valid");
            let mut b = self.client.request(method, &req.url).body(req.body.clone());
            for (k, v) in &req.headers {
                b = b.header(k, v);
            }
            match b.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let headers = r
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    match r.bytes().await {
                        Ok(body) if !is_retryable_status(status) || attempt == ATTEMPTS => {
                            return Ok(Response { status, headers, body: body.to_vec() })
                        }
                        Ok(_) => last = format!("HTTP {status}"),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.without_url().to_string(),
            }
            tracing::debug!(operation, attempt, error = %last, "storage request will be retried");
        }
        Err(StorageError::Transport { operation, attempts: ATTEMPTS, detail: last })
    }
}
