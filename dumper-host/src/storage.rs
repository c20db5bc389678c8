//! Sends `dilux-azure` requests over reqwest, under dilux-azure's retry policy.

use std::time::Duration;

use dilux_azure::retry::{Outcome, RetryPolicy};
use dilux_azure::{Account, AzureError, Request, Response};

/// One storage account and an HTTP client for it.
#[derive(Clone)]
pub struct Storage {
    pub account: Account,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl Storage {
    pub fn new(account: Account) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a TLS-capable reqwest client builds");
        Storage { account, client, retry: RetryPolicy::DEFAULT }
    }

    /// The same account under [`RetryPolicy::PATIENT`]: for a dump's or a restore's data path.
    pub fn patient(&self) -> Storage {
        Storage { retry: RetryPolicy::PATIENT, ..self.clone() }
    }

    /// Sends `req`, retrying what the policy calls transient (408/429/5xx, connection failures).
    /// Non-2xx answers that are not transient come back as `Ok(Response)` for the caller's parser;
    /// giving up is [`AzureError::Unreachable`].
    pub async fn send(&self, operation: &'static str, req: Request) -> Result<Response, AzureError> {
        let mut retry = self.retry.start(operation);
        while let Some(pause) = retry.next_attempt() {
            if !pause.is_zero() {
                let (attempt, error) = (retry.attempt(), retry.last_error());
                tracing::debug!(operation, attempt, error, "retrying storage request");
                tokio::time::sleep(pause).await;
            }
            if let Some(response) = retry.record(self.send_once(&req).await) {
                return Ok(response);
            }
        }
        Err(retry.give_up())
    }

    async fn send_once(&self, req: &Request) -> Outcome {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("methods we build are valid");
        let mut b = self.client.request(method, &req.url).body(req.body.clone());
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let r = match b.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => return Outcome::Refused(e.without_url().to_string()),
            // No connection: the service never saw the request.
            Err(e) if e.is_connect() => return Outcome::Unsent(e.without_url().to_string()),
            Err(e) => return Outcome::Transport(e.without_url().to_string()),
        };
        let status = r.status().as_u16();
        let headers =
            r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
        match r.bytes().await {
            Ok(body) => Outcome::Answered(Response { status, headers, body: body.to_vec() }),
            // The connection dropped mid-body (Azurite resets under load).
            Err(e) => Outcome::Transport(e.without_url().to_string()),
        }
    }
}
