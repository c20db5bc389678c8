//! Serves a Spin app locally: each `[[trigger.http]]` route goes to a fresh instance of its component
//! through `wasi:http/incoming-handler`, as `spin up` would. Tick routes are called on a timer. The
//! probe endpoint is served beside the routes, so the app's API reaches this very process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::host::{engine_and_linker, load_component, GuestConfig, HostState};
use crate::manifest::{route_matches, Manifest, Tick};
use crate::outbound::{AllowedHost, OutboundPolicy};
use crate::probe_service::ProbeService;
use crate::reply;

struct Route {
    route: String,
    pre: ProxyPre<HostState>,
    guest: GuestConfig,
}

pub struct App {
    routes: Vec<Route>,
    pub ticks: Vec<Tick>,
    probe: Arc<ProbeService>,
    /// Names besides loopback ones a loopback listener answers to.
    extra_hosts: Vec<String>,
}

impl App {
    /// Loads and pre-instantiates every component the manifest's triggers use; `probe` answers
    /// [`dilux_domain::probe::PROBE_PATH`].
    pub fn load(manifest_path: &Path, env: &HashMap<String, String>, probe: Arc<ProbeService>) -> anyhow::Result<Self> {
        let (manifest, base) = Manifest::load(manifest_path)?;
        let app_vars = manifest.resolve_app_variables(env)?;
        let (engine, linker) = engine_and_linker()?;
        let mut routes = Vec::new();
        let mut ticks = Vec::new();
        let mut loaded: HashMap<String, (ProxyPre<HostState>, GuestConfig)> = HashMap::new();
        for trigger in &manifest.trigger.http {
            if !loaded.contains_key(&trigger.component) {
                let c = &manifest.component[&trigger.component];
                let allowed = c
                    .allowed_outbound_hosts
                    .iter()
                    .map(|h| {
                        let h = crate::manifest::expand(h, &app_vars).map_err(anyhow::Error::from)?;
                        AllowedHost::parse(&h).map_err(anyhow::Error::from)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| anyhow::anyhow!("component `{}`: allowed_outbound_hosts: {e}", trigger.component))?;
                let guest = GuestConfig {
                    name: trigger.component.clone(),
                    variables: Arc::new(manifest.component_variables(&trigger.component, &app_vars)?),
                    outbound: OutboundPolicy { allowed, component: trigger.component.clone() },
                    files: c
                        .files
                        .iter()
                        .map(|f| crate::manifest::FileMount {
                            source: base.join(&f.source),
                            destination: f.destination.clone(),
                        })
                        .collect(),
                    dumper: None,
                };
                let component = load_component(&engine, &base.join(&c.source))?;
                let pre = ProxyPre::new(
                    linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
                        format!("component `{}` imports something the dumper-host does not provide", trigger.component)
                    })?,
                )?;
                ticks.extend(c.tool.dumper_host.ticks.iter().cloned());
                loaded.insert(trigger.component.clone(), (pre, guest));
            }
            let (pre, guest) = loaded[&trigger.component].clone();
            routes.push(Route { route: trigger.route.clone(), pre, guest });
        }
        // Most specific first: exact routes, then longer wildcard prefixes.
        routes.sort_by_key(|r| (r.route.ends_with("/..."), std::cmp::Reverse(r.route.len())));
        Ok(App { routes, ticks, probe, extra_hosts: allowed_hosts(env) })
    }

    fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| route_matches(&r.route, path))
    }

    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
        client: SocketAddr,
        loopback: bool,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        let path = req.uri().path().to_string();
        let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
        // On a loopback listener only loopback names are served: a page elsewhere whose DNS name is
        // rebound to 127.0.0.1 cannot reach the app or the probe through the user's browser.
        if loopback && !is_loopback_host(&host) && !self.extra_hosts.iter().any(|h| *h == host_name(&host)) {
            return Ok(reply::error(
                421,
                "this address serves only requests for 127.0.0.1, localhost or [::1] (add other names the app is \
                 reached by to DILUX_ALLOWED_HOSTS)",
            ));
        }
        if path == dilux_domain::probe::PROBE_PATH {
            return Ok(self.probe.handle(req).await);
        }
        if path == dilux_domain::notify::NOTIFY_PATH {
            return Ok(self.probe.notify(req).await);
        }
        if path == crate::metrics::METRICS_PATH {
            return Ok(self.probe.metrics(req).await);
        }
        let Some(route) = self.route_for(&path) else {
            return Ok(reply::error(404, "no route matches this path"));
        };
        // The body is read here, bounded in size and time, before any component runs.
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_REQUEST_BODY);
        let body = match tokio::time::timeout(BODY_TIMEOUT, http_body_util::BodyExt::collect(limited)).await {
            Err(_) => return Ok(reply::error(408, "the request body did not arrive in time")),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Ok(reply::error(413, "request bodies are at most 64 KiB"))
            }
            Ok(Err(_)) => return Ok(reply::error(400, "the request body could not be read")),
            Ok(Ok(b)) => b.to_bytes(),
        };
        let body = http_body_util::BodyExt::map_err(
            http_body_util::Full::new(body),
            |never: std::convert::Infallible| -> hyper::Error { match never {} },
        );
        let mut req = hyper::Request::from_parts(parts, body);
        let host = if host.is_empty() { "localhost".to_string() } else { host };
        // The headers Spin gives components.
        let full = format!("http://{host}{}", req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let prefix = route.route.trim_end_matches("/...");
        let info = path.strip_prefix(prefix).unwrap_or("").to_string();
        for (k, v) in [
            ("spin-full-url", full),
            ("spin-path-info", info),
            ("spin-matched-route", route.route.clone()),
            ("spin-component-route", prefix.to_string()),
            ("spin-client-addr", client.to_string()),
        ] {
            req.headers_mut().insert(k, v.parse()?);
        }
        let mut store = crate::host::store(route.pre.engine(), HostState::new(&route.guest)?);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let wreq = wasmtime_wasi_http::WasiHttpView::http(store.data_mut()).new_incoming_request(Scheme::Http, req)?;
        let out = wasmtime_wasi_http::WasiHttpView::http(store.data_mut()).new_response_outparam(sender)?;
        let pre = route.pre.clone();
        let component = route.guest.name.clone();
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(store, wreq, out).await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let e = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("component `{component}` returned without a response"),
                    Ok(Err(e)) => anyhow::Error::from(e),
                    Err(e) => e.into(),
                };
                tracing::error!(component = %component, error = ?e, "component failed");
                Ok(reply::error(500, "internal error: the component failed; see the dumper-host log"))
            }
        }
    }
}

/// The largest request body any route takes (the API's own limit).
const MAX_REQUEST_BODY: usize = 64 * 1024;
/// How long a client may take to send its headers, and then its body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/1 connections as every listener of the host serves them: kept alive, headers within 10 s.
pub(crate) fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    builder
}

/// A `Host` header's name, without its port, in lower case.
fn host_name(host: &str) -> String {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') && port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    name.to_ascii_lowercase()
}

/// `Host` names a loopback listener answers to (any port): the rule database hosts follow too.
fn is_loopback_host(host: &str) -> bool {
    dilux_domain::tls::is_loopback_host(&host_name(host))
}

/// Other names a loopback listener is reached by (a port forward's, a dev container's), from
/// `DILUX_ALLOWED_HOSTS` (comma-separated).
pub fn allowed_hosts(env: &HashMap<String, String>) -> Vec<String> {
    env.get("DILUX_ALLOWED_HOSTS")
        .map(|v| v.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect())
        .unwrap_or_default()
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> anyhow::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    loop {
        let (conn, addr) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| app.clone().handle(req, addr, loopback));
            if let Err(e) = http1_builder().serve_connection(TokioIo::new(conn), svc).await {
                tracing::debug!(error = %e, "connection closed with error");
            }
        });
    }
}

/// Calls each tick route every `every_seconds`, over HTTP like a Kubernetes CronJob would, with the
/// shared tick token. A failed tick is logged and retried at the next interval.
pub fn spawn_ticks(ticks: &[Tick], base_url: String, token: Option<String>) {
    let client = reqwest::Client::new();
    for tick in ticks.iter().cloned() {
        let (client, base_url, token) = (client.clone(), base_url.clone(), token.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(tick.every_seconds.max(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                let mut req = client.post(format!("{base_url}{}", tick.route));
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => tracing::debug!(route = %tick.route, "tick ok"),
                    Ok(r) => {
                        tracing::warn!(route = %tick.route, status = r.status().as_u16(), "tick answered an error")
                    }
                    Err(e) => tracing::warn!(route = %tick.route, error = %e.without_url(), "tick failed"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{allowed_hosts, host_name, is_loopback_host};

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for ok in ["127.0.0.1:3000", "localhost:3000", "LOCALHOST", "[::1]:8080", "127.0.0.1", "127.0.0.2:80", "[::1]"]
        {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:3000", "127.0.0.1.nip.io:3000", "", "localhost.evil:80"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
        let env = [("DILUX_ALLOWED_HOSTS".to_string(), " Dev.Example.com ,box:8080".to_string())].into();
        assert_eq!(allowed_hosts(&env), ["dev.example.com", "box:8080"]);
        assert_eq!(host_name("Dev.Example.com:3000"), "dev.example.com");
    }
}
