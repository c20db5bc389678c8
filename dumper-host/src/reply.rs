//! JSON answers for the host's own HTTP endpoints (the local Spin runner and the probe service).

use http_body_util::BodyExt;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub(crate) fn json(status: u16, body: Vec<u8>) -> hyper::Response<HyperOutgoingBody> {
    with_type(status, "application/json", body)
}

pub(crate) fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> hyper::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(bytes::Bytes::from(body))
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync();
    hyper::Response::builder().status(status).header("content-type", content_type).body(body).expect("static response")
}

/// `{"error": msg}` with `status`.
pub(crate) fn error(status: u16, msg: &str) -> hyper::Response<HyperOutgoingBody> {
    json(status, serde_json::to_vec(&serde_json::json!({ "error": msg })).expect("strings serialize"))
}
