//! The probe service: `POST /internal/dumper/probe` (Bearer `dumper_token`) runs a connection test or
//! database listing for the API, which cannot run database clients itself; `GET` reports the
//! installed tools. A worker serves it on its own listener ([`serve`]); the local Spin runner
//! serves it beside the app's routes.

use std::sync::Arc;

use dilux_domain::probe::{ProbeRequest, PROBE_PATH};
use dilux_domain::secret::SharedToken;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::dump::DumpOptions;
use crate::reply;

/// Probe requests carry one small JSON document.
const MAX_BODY: usize = 64 * 1024;

pub struct ProbeService {
    /// `None`: connection tests are off.
    token: Option<SharedToken>,
    options: DumpOptions,
}

impl ProbeService {
    /// `token`: `dumper_token`; unset or empty turns connection tests off, a short one is refused.
    pub fn new(token: Option<String>, options: DumpOptions) -> Result<Self, dilux_domain::config::ConfigError> {
        let token = token.filter(|t| !t.is_empty()).map(|t| SharedToken::new("dumper_token", &t)).transpose()?;
        Ok(ProbeService { token, options })
    }

    /// Answers one request to [`PROBE_PATH`].
    pub async fn handle(&self, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<HyperOutgoingBody> {
        let Some(token) = &self.token else {
            return reply::error(503, "connection tests are off: set the dumper_token variable");
        };
        if !token.admits(req.headers().get("authorization").and_then(|h| h.to_str().ok())) {
            return reply::error(401, "a valid dumper token is required");
        }
        if req.method() == hyper::Method::GET {
            let tools = crate::probe::tools(&self.options);
            return reply::json(200, serde_json::to_vec(&tools).expect("reports serialize"));
        }
        if req.method() != hyper::Method::POST {
            return reply::error(405, "probes are POST (GET reports the installed tools)");
        }
        let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY).collect();
        let body = match tokio::time::timeout(crate::server::BODY_TIMEOUT, limited).await {
            Err(_) => return reply::error(408, "the probe request did not arrive in time"),
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => return reply::error(413, "probe request too large"),
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

/// Serves only [`PROBE_PATH`] on `listener` (a worker that does not run the app), until the process
/// ends or accepting fails.
pub async fn serve(service: Arc<ProbeService>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(if req.uri().path() == PROBE_PATH {
                        service.handle(req).await
                    } else {
                        reply::error(404, "this listener serves only the probe endpoint")
                    })
                }
            });
            if let Err(e) = crate::server::http1_builder().serve_connection(TokioIo::new(conn), svc).await {
                tracing::debug!(error = %e, "probe connection closed with error");
            }
        });
    }
}
