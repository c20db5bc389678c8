//! The probe service: `POST /internal/dumper/probe` (Bearer `dumper_token`) runs a connection test or
//! database listing for the API, which cannot run database clients itself; `GET` reports the
//! installed tools and notifier plug-ins. `POST /internal/dumper/notify` sends a rendered notification for
//! the API, which has no sockets of its own. `GET /metrics` (the same token) is Prometheus' view of this host. A worker
//! serves them on its own listener ([`serve`]); the local Spin runner serves them beside the app's routes.

use std::sync::Arc;

use dilux_domain::notify::{Outgoing, NOTIFY_PATH};
use dilux_domain::probe::{ProbeRequest, PROBE_PATH};
use dilux_domain::secret::SharedToken;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use std::time::Duration;

use chrono::Utc;
use dilux_azure::queue;

use crate::dump::DumpOptions;
use crate::host::notifier::Notifiers;
use crate::metrics::METRICS_PATH;
use crate::reply;
use crate::storage::Storage;

/// Probe requests carry one small JSON document.
const MAX_BODY: usize = 64 * 1024;

pub struct ProbeService {
    /// `None`: connection tests are off.
    token: Option<SharedToken>,
    options: DumpOptions,
    /// The jobs queues whose depth [`METRICS_PATH`] reports.
    queues: Option<(Storage, Vec<String>)>,
    /// The notifier plug-ins a plug-in channel's notifications run.
    notifiers: Option<Arc<Notifiers>>,
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a scrape waits for each queue's depth (storage down must not hang Prometheus).
const DEPTH_TIMEOUT: Duration = Duration::from_secs(5);

impl ProbeService {
    /// `token`: `dumper_token`; unset or empty turns connection tests off, a short one is refused.
    pub fn new(token: Option<String>, options: DumpOptions) -> Result<Self, dilux_domain::config::ConfigError> {
        let token = token.filter(|t| !t.is_empty()).map(|t| SharedToken::new("dumper_token", &t)).transpose()?;
        Ok(ProbeService { token, options, queues: None, notifiers: None })
    }

    /// Reports the depth of `queues` on `storage` with the metrics.
    pub fn with_queues(self, storage: Storage, queues: Vec<String>) -> Self {
        ProbeService { queues: Some((storage, queues)), ..self }
    }

    /// Runs plug-in channels' notifications with `notifiers`.
    pub fn with_notifiers(self, notifiers: Arc<Notifiers>) -> Self {
        ProbeService { notifiers: Some(notifiers), ..self }
    }

    /// `None` when the request may go on; the refusal otherwise. The probe and the metrics share the token.
    fn refuse(&self, req: &hyper::Request<hyper::body::Incoming>) -> Option<hyper::Response<HyperOutgoingBody>> {
        let Some(token) = &self.token else {
            return Some(reply::error(503, "the probe and metrics are off: set the dumper_token variable"));
        };
        if !token.admits(req.headers().get("authorization").and_then(|h| h.to_str().ok())) {
            return Some(reply::error(401, "a valid dumper token is required"));
        }
        None
    }

    /// Answers one request to [`METRICS_PATH`]: Prometheus' text format, queue depths read now.
    pub async fn metrics(&self, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<HyperOutgoingBody> {
        if let Some(refused) = self.refuse(&req) {
            return refused;
        }
        if req.method() != hyper::Method::GET {
            return reply::error(405, "metrics are GET");
        }
        let mut depths = Vec::new();
        let Some((storage, queues)) = &self.queues else {
            return reply::with_type(200, PROMETHEUS_TEXT, crate::metrics::global().render(&depths).into_bytes());
        };
        for queue in queues {
            let ask = storage.send("get queue metadata", queue::get_metadata(&storage.account, Utc::now(), queue));
            match tokio::time::timeout(DEPTH_TIMEOUT, ask).await {
                Ok(Ok(r)) => match queue::parse_approximate_count(r) {
                    Ok(n) => depths.push((queue.clone(), n)),
                    Err(e) => tracing::debug!(queue = %queue, error = %e, "queue depth unknown"),
                },
                Ok(Err(e)) => tracing::debug!(queue = %queue, error = %e, "queue depth unknown"),
                Err(_) => tracing::debug!(queue = %queue, "queue depth unknown: storage did not answer in time"),
            }
        }
        reply::with_type(200, PROMETHEUS_TEXT, crate::metrics::global().render(&depths).into_bytes())
    }

    /// Answers one request to [`NOTIFY_PATH`]: sends the notification, answers how it went.
    pub async fn notify(&self, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<HyperOutgoingBody> {
        if let Some(refused) = self.refuse(&req) {
            return refused;
        }
        if req.method() != hyper::Method::POST {
            return reply::error(405, "notifications are POST");
        }
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let outgoing: Outgoing = match serde_json::from_slice(&body) {
            Ok(o) => o,
            Err(e) => {
                return reply::error(400, &format!("not a notification: {}", e.to_string().replace('"', "'")));
            }
        };
        let result = crate::notify::send(&outgoing, self.notifiers.as_deref()).await;
        reply::json(200, serde_json::to_vec(&result).expect("results serialize"))
    }

    /// Answers one request to [`PROBE_PATH`].
    pub async fn handle(&self, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<HyperOutgoingBody> {
        if let Some(refused) = self.refuse(&req) {
            return refused;
        }
        if req.method() == hyper::Method::GET {
            let mut tools = crate::probe::tools(&self.options);
            tools["notifier_plugins"] = self.notifiers.as_ref().map(|n| n.names()).unwrap_or_default().into();
            return reply::json(200, serde_json::to_vec(&tools).expect("reports serialize"));
        }
        if req.method() != hyper::Method::POST {
            return reply::error(405, "probes are POST (GET reports the installed tools)");
        }
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let request: ProbeRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return reply::error(400, &format!("not a probe request: {}", e.to_string().replace('"', "'"))),
        };
        let result = crate::probe::probe(&request, &self.options).await;
        tracing::info!(engine = ?request.engine_type, host = %request.host, port = request.port,
            success = result.success, ms = result.duration_ms, "probe");
        reply::json(200, serde_json::to_vec(&result).expect("probe results serialize"))
    }
}

/// A request's body, within [`MAX_BODY`] and [`crate::server::BODY_TIMEOUT`].
async fn read_body(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<bytes::Bytes, hyper::Response<HyperOutgoingBody>> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(crate::server::BODY_TIMEOUT, limited).await {
        Err(_) => Err(reply::error(408, "the request did not arrive in time")),
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(_)) => Err(reply::error(413, "request too large")),
    }
}

/// Serves only [`PROBE_PATH`], [`NOTIFY_PATH`] on `listener` (a worker that does not run the app), until the process
/// ends or accepting fails.
pub async fn serve(service: Arc<ProbeService>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(match req.uri().path() {
                        PROBE_PATH => service.handle(req).await,
                        NOTIFY_PATH => service.notify(req).await,
                        METRICS_PATH => service.metrics(req).await,
                        _ => reply::error(404, "this listener serves only the probe endpoint and the metrics"),
                    })
                }
            });
            if let Err(e) = crate::server::http1_builder().serve_connection(TokioIo::new(conn), svc).await {
                tracing::debug!(error = %e, "probe connection closed with error");
            }
        });
    }
}
