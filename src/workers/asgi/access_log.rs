//! The access log line of an ASGI request, from Rust: the atoms Gunicorn's ASGI worker fills
//! (its environ for `%({key}e)s` is the minimal one it builds for logging).

use std::time::Duration;

use super::wire;
use crate::http::Request;
use crate::telemetry::access;

pub fn log(req: &Request, status: u16, sent: u64, headers: &[(String, String)], elapsed: Duration) {
    let protocol = format!("HTTP/{}.{}", req.version.0, req.version.1);
    let status = format!("{} {}", status, wire::reason(status));
    let remote = match (&req.proxy, &req.peer) {
        (Some(p), _) if p.client_addr.is_some() => p.client_addr.clone().unwrap_or_default(),
        (_, peer) => peer.ip_string(),
    };
    let env = |key: &str| -> Option<String> {
        match key {
            "REQUEST_METHOD" => Some(req.method.clone()),
            "RAW_URI" => Some(req.uri.clone()),
            "PATH_INFO" => Some(req.path.clone()),
            "QUERY_STRING" => Some(req.query.clone()),
            "SERVER_PROTOCOL" => Some(protocol.clone()),
            "REMOTE_ADDR" => Some(remote.clone()),
            k => k.strip_prefix("HTTP_").and_then(|h| {
                let name = h.replace('_', "-");
                let value = req.header_values(&name).next().map(str::to_string);
                value
            }),
        }
    };
    let record = access::AccessRecord {
        remote_addr: &remote,
        method: &req.method,
        raw_uri: &req.uri,
        protocol: &protocol,
        status: &status,
        path_info: Some(&req.path),
        query: &req.query,
        sent: Some(sent),
        request_headers: &req.headers,
        response_headers: headers,
        request_time: elapsed,
        environ: &env,
    };
    access::log(&record);
}
