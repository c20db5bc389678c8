//! The Spin entry point: Spin's request in, the API's [`handle`], Spin's response out. The app's
//! stores are Azure's, built from the Spin variables for every request (instances are fresh).

use dilux_azure_spin::stores::HttpDumper;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::App;

fn app() -> Result<App, ApiError> {
    let vars = dilux_azure_spin::config::variables();
    let storage = dilux_azure_spin::config::storage(&vars)?;
    let c = ApiConfig::load(&vars, storage.account.is_local_emulator())?;
    Ok(App {
        stores: storage.stores(HttpDumper::new(c.dumper_url, c.dumper_token)),
        sealer: c.sealer,
        auth: c.auth,
        clock: chrono::Utc::now,
    })
}

#[http_component]
async fn handle(req: Request) -> Response {
    let client_ip = req
        .header("spin-client-addr")
        .and_then(|h| h.as_str())
        .map(|a| a.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(a).to_string())
        .unwrap_or_default();
    let request = crate::Request {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query().to_string(),
        headers: req.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string())).collect(),
        body: req.body().to_vec(),
        client_ip,
    };
    let app = app();
    let r = crate::handle(app.as_ref(), &request).await;
    let mut b = Response::builder();
    b.status(r.status);
    for (k, v) in &r.headers {
        b.header(k, v);
    }
    b.body(r.body).build()
}
