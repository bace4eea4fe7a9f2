//! Sans-IO HTTP/1.1 codec implementing Gunicorn 27.0.1's request parsing rules and response
//! encoding, error for error and byte for byte.
//!
//! Owns: request heads (`parse_head`), body decoding (`ChunkedDecoder`, `BodyDecoder`), the PROXY
//! protocol header, uWSGI request packets (`parse_uwsgi`), Gunicorn's error responses, and the
//! response head and chunk encoding. It must not touch sockets, Python, configuration files or
//! logging: the server feeds it bytes and writes what it returns.
#![forbid(unsafe_code)]

mod body;
mod chunk_line;
mod config;
mod date;
mod error;
mod framing;
mod headers;
mod host;
mod policy;
mod proxy;
mod pyrepr;
mod request;
mod response;
mod uri;
mod uwsgi;

pub use body::{BodyDecoder, ChunkedDecoder};
pub use config::{
    HeaderMapPolicy, Limits, ParserConfig, DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS,
    MAX_REQUEST_LINE,
};
pub use date::{http_date, DateCache};
pub use error::{error_page, HttpVersionRepr, ParseError, ResponseError};
pub use framing::BodyKind;
pub use proxy::{format_ipv6, parse_proxy_header, ProxyInfo, ProxyMode, ProxyParse};
pub use pyrepr::{html_escape, latin1, push_latin1, repr_bytes, repr_str};
pub use request::{head_eof_error, parse_head, HeadParser, RequestHead};
pub use response::{
    encode_chunk, encode_early_hints, encode_head, is_hop_by_hop, process_headers,
    response_forbids_content_length, response_is_chunked, response_omits_body, valid_header_name,
    valid_header_value, validate_status, ConnectionHeader, ResponseHeaders, LAST_CHUNK,
};
pub use uri::{percent_decode, split_request_uri, InvalidUri, UriParts};
pub use uwsgi::{
    head_from_vars, parse_packet, parse_uwsgi, GatewayVars, UwsgiError, MAX_VARS as UWSGI_MAX_VARS,
};
