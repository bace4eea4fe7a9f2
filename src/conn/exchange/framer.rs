//! A WSGI response framed as Gunicorn's `Response` frames it, without I/O: the app's status
//! and headers checked (an invalid one is the app's error), hop-by-hop headers dropped,
//! Content-Length honoured and enforced, HTTP/1.1 without a length chunked (never toward a
//! uWSGI gateway, where the close ends the body), and no body for HEAD, 1xx, 204 and 304.
//! The HTTP/1 exchange writes the bytes to its socket; the gevent worker's exchange hands
//! them to the I/O thread.

use ferrocorn_h1::{encode_chunk, encode_head, ConnectionHeader, DateCache};

use crate::http::ResponseInfo;
use crate::telemetry::error_log;

thread_local! {
    /// One Date header cache per serving thread: the text is formatted once a second, not
    /// once a response.
    static DATE: std::cell::RefCell<DateCache> = std::cell::RefCell::new(DateCache::new());
}

pub struct Framer {
    pub response: ResponseInfo,
    pub version: (u8, u8),
    pub is_head: bool,
    /// The app answered `Connection: upgrade`.
    pub upgrade: bool,
    /// A uWSGI gateway takes the response.
    pub to_gateway: bool,
    warned_body: bool,
}

impl Framer {
    pub fn new(version: (u8, u8), is_head: bool, to_gateway: bool) -> Self {
        Framer {
            response: ResponseInfo::default(),
            version,
            is_head,
            upgrade: false,
            to_gateway,
            warned_body: false,
        }
    }

    /// No body may follow this response's head.
    pub fn no_body(&self) -> bool {
        ferrocorn_h1::response_omits_body(
            if self.is_head { "HEAD" } else { "" },
            self.response.status_code,
        )
    }

    /// `start_response`: `Err` is the message of the app's mistake.
    pub fn start(&mut self, status: &str, headers: &[(String, String)]) -> Result<(), String> {
        let code = ferrocorn_h1::validate_status(status).map_err(|e| e.to_string())?;
        let mut processed = ferrocorn_h1::process_headers(headers).map_err(|e| e.to_string())?;
        if ferrocorn_h1::response_forbids_content_length(code) {
            processed.drop_content_length();
        }
        self.response.status_code = code;
        self.response.status = Some(status.to_string());
        // A negative Content-Length is kept as Gunicorn keeps it: no body byte is sent.
        self.response.response_length = processed.content_length.map(|n| n.max(0) as u64);
        self.upgrade = processed.upgrade;
        self.response.headers = processed.headers;
        self.response.chunked = !self.to_gateway
            && ferrocorn_h1::response_is_chunked(
                processed.content_length,
                self.version,
                self.no_body(),
            );
        Ok(())
    }

    /// The head: `Connection: upgrade` when the app asked for it, else `close` when
    /// `will_close` says so (true is returned then: the client was told the connection
    /// ends), else `keep-alive`.
    pub fn head_closing(&self, out: &mut Vec<u8>, will_close: impl FnOnce() -> bool) -> bool {
        let closing = !self.upgrade && will_close();
        let connection = match (self.upgrade, closing) {
            (true, _) => ConnectionHeader::Upgrade,
            (false, true) => ConnectionHeader::Close,
            (false, false) => ConnectionHeader::KeepAlive,
        };
        self.head(out, connection);
        closing
    }

    /// The head, with the Connection header the caller decided.
    fn head(&self, out: &mut Vec<u8>, connection: ConnectionHeader) {
        let status = self.response.status.as_deref().unwrap_or_default();
        DATE.with(|d| {
            encode_head(
                out,
                self.version,
                status,
                "ferrocorn",
                d.borrow_mut().get(),
                connection,
                self.response.chunked,
                &self.response.headers,
            )
        });
    }

    /// Body bytes as they go out: none on a no-body response, none past the announced
    /// length, chunked when the response is.
    pub fn body(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.no_body() {
            if !data.is_empty() && !self.warned_body {
                self.warned_body = true;
                error_log::warning(&format!(
                    "WSGI app sent body bytes on a no-body response ({}); they were dropped",
                    self.response.status.as_deref().unwrap_or("")
                ));
            }
            return;
        }
        let mut data = data;
        if let Some(len) = self.response.response_length {
            let left = len.saturating_sub(self.response.sent) as usize;
            data = &data[..data.len().min(left)];
        }
        if self.response.chunked {
            encode_chunk(out, data);
        } else {
            out.extend_from_slice(data);
        }
        self.response.sent += data.len() as u64;
    }

    /// The end of the body (the last chunk). True when the app sent less than its
    /// Content-Length (logged): the client cannot tell where the response ends.
    pub fn end(&mut self, out: &mut Vec<u8>) -> bool {
        if self.response.chunked {
            out.extend_from_slice(ferrocorn_h1::LAST_CHUNK);
        }
        match self.response.response_length {
            Some(len) if self.response.sent < len && !self.no_body() => {
                error_log::warning(&format!(
                    "WSGI app sent {} bytes of a {}-byte Content-Length; closing the connection",
                    self.response.sent, len
                ));
                true
            }
            _ => false,
        }
    }

    /// The length-delimited part of `will_close`: whether the client can find the end of
    /// this response without the connection closing.
    pub fn delimited(&self) -> bool {
        let r = &self.response;
        r.response_length.is_some() || r.chunked || self.no_body()
    }
}
