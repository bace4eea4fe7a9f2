//! The response side of an HTTP/1 call: the app's messages become the head (framing decided
//! as Gunicorn's ASGI worker decides it), body chunks, a sent file, or the interim responses.

use std::sync::Arc;

use super::super::stream::Stream;
use super::super::wire;
use super::Call;
use crate::http::{Outgoing, Session};
use crate::telemetry::error_log;

/// Body messages from this size on are written from the app's buffer (a vectored write).
const VECTORED_FROM: usize = 16 * 1024;

impl Call<'_> {
    /// Write what one message asks for. Err: the client is gone.
    pub(super) async fn handle(
        &mut self,
        stream: &mut Stream,
        session: &Arc<Session>,
        msg: Outgoing,
    ) -> Result<(), ()> {
        match msg {
            Outgoing::Continue if !self.resp.head_written && self.resp.start.is_none() => {
                self.continue_sent = true;
                stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .map_err(drop)?;
            }
            // HTTP/1.0 has no interim responses (RFC 9110 15.2).
            Outgoing::Informational { status, headers }
                if !self.resp.head_written && self.version >= (1, 1) =>
            {
                let mut out = format!(
                    "HTTP/{}.{} {} {}\r\n",
                    self.version.0,
                    self.version.1,
                    status,
                    wire::reason(status)
                )
                .into_bytes();
                wire::push_headers(&mut out, &headers);
                out.extend_from_slice(b"\r\n");
                stream.write_all(&out).await.map_err(drop)?;
            }
            Outgoing::Start { status, headers } => self.resp.start = Some((status, headers)),
            Outgoing::Response {
                status,
                headers,
                data,
                more,
            } => {
                self.resp.start = Some((status, headers));
                self.write_body(stream, session, &data, more).await?;
            }
            Outgoing::Body { data, more } => self.write_body(stream, session, &data, more).await?,
            Outgoing::Raw { data, last, close } => {
                self.resp.head_written = true;
                let res = stream.write_all(&data).await;
                session.written(data.len());
                res.map_err(drop)?;
                if last {
                    self.resp.complete = true;
                    self.resp.close |= close;
                }
            }
            Outgoing::PathSend { path } => {
                self.send_path(stream, &path).await?;
                self.resp.complete = true;
            }
            // WebSocket messages never reach an HTTP call.
            _ => {}
        }
        Ok(())
    }

    /// One body message (with the head before the first).
    async fn write_body(
        &mut self,
        stream: &mut Stream,
        session: &Arc<Session>,
        data: &[u8],
        more: bool,
    ) -> Result<(), ()> {
        let mut out = Vec::with_capacity(256);
        let mut tail = Vec::new();
        if !self.resp.head_written {
            self.head(&mut out, None);
        }
        let body = self.frame_body(&mut out, &mut tail, data, !more);
        // A large body goes out from the app's buffer, beside the framing, instead of being
        // copied next to it.
        let res = if body.len() >= VECTORED_FROM {
            stream.write_all_parts(&[&out, body, &tail]).await
        } else {
            out.extend_from_slice(body);
            out.extend_from_slice(&tail);
            stream.write_all(&out).await
        };
        session.written(data.len());
        res.map_err(drop)?;
        if !more {
            self.resp.complete = true;
        }
        Ok(())
    }

    /// The response head, deciding the framing as Gunicorn's ASGI worker does.
    /// `file_len`: the body is a file of this size (pathsend), so it can be framed exactly.
    fn head(&mut self, out: &mut Vec<u8>, file_len: Option<u64>) {
        let (status, mut headers) = self.resp.start.take().unwrap_or((500, Vec::new()));
        let scan = wire::scan(&headers);
        let omit = wire::omits_body(&self.method, status);
        let mut chunked = scan.transfer_encoding;
        let mut has_length = scan.has_content_length;
        if omit && (scan.has_content_length || scan.transfer_encoding) {
            let forbid_length = (100..200).contains(&status) || status == 204;
            headers.retain(|(n, _)| {
                let framing = n.eq_ignore_ascii_case(b"transfer-encoding")
                    || (forbid_length && n.eq_ignore_ascii_case(b"content-length"));
                !framing
            });
            if forbid_length {
                has_length = false;
            }
            chunked = false;
        }
        if !has_length && !scan.transfer_encoding && !omit {
            if let Some(len) = file_len {
                headers.push((b"content-length".to_vec(), len.to_string().into_bytes()));
                has_length = true;
                self.resp.length_left = Some(len);
            } else if self.version >= (1, 1) {
                chunked = true;
                headers.push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
            }
        }
        if has_length && !chunked && !omit && self.resp.length_left.is_none() {
            self.resp.length_left = scan.content_length;
        }
        let close_delimited = !omit && !has_length && !chunked;
        // A client still waiting for `100 Continue` has not sent its body; what it sends
        // next could be taken for the body, so the connection ends with this response.
        let unawaited_body = self.expect_continue && !self.continue_sent && !self.decoder.is_done();
        let close = self.close_requested
            || close_delimited
            || unawaited_body
            || scan.connection_close
            || self.ctx.serving.keepalive.is_none()
            || !self.ctx.alive();
        if self.logged.is_some() {
            self.resp.headers_for_log = headers
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into_owned(),
                        ferrocorn_h1::latin1(v),
                    )
                })
                .collect();
        }
        wire::encode_head(out, self.version, status, &headers, close);
        self.resp.head_written = true;
        self.resp.status = status;
        self.resp.chunked = chunked;
        self.resp.omit = omit;
        self.resp.close = close;
    }

    /// Frame one body message: what goes before the app's bytes is appended to `out`, what
    /// goes after them to `tail`; returns the part of `data` to send.
    fn frame_body<'d>(
        &mut self,
        out: &mut Vec<u8>,
        tail: &mut Vec<u8>,
        data: &'d [u8],
        last: bool,
    ) -> &'d [u8] {
        let mut data = data;
        if self.resp.omit {
            if !data.is_empty() && !self.resp.warned {
                self.resp.warned = true;
                error_log::warning(&format!(
                    "ASGI app sent body bytes on a no-body response (method={} status={}); dropping per RFC 9110.",
                    self.method, self.resp.status
                ));
            }
            data = &[];
        }
        if let Some(left) = self.resp.length_left.as_mut() {
            let take = (*left).min(data.len() as u64) as usize;
            data = &data[..take];
            *left -= take as u64;
        }
        self.resp.sent += data.len() as u64;
        if self.resp.chunked {
            if !data.is_empty() {
                wire::push_chunk_size(out, data.len());
                tail.extend_from_slice(b"\r\n");
            }
            if last {
                tail.extend_from_slice(wire::LAST_CHUNK);
            }
        }
        if last && matches!(self.resp.length_left, Some(l) if l > 0) {
            // Shorter than announced: the client would wait for the rest.
            self.resp.close = true;
        }
        data
    }

    async fn send_path(&mut self, stream: &mut Stream, path: &str) -> Result<(), ()> {
        // Only a regular file: a FIFO would block the I/O thread in open(2), and a
        // directory cannot be sent.
        let opened = std::fs::metadata(path).and_then(|m| {
            if !m.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            let f = std::fs::File::open(path)?;
            let len = f.metadata()?.len();
            Ok((f, len))
        });
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                error_log::error(&format!(
                    "http.response.pathsend: cannot send {path:?}: {e}"
                ));
                if !self.resp.head_written {
                    // Nothing went out yet: the client gets the 500.
                    self.resp.start = None;
                    self.resp.status = 500;
                    self.resp.close = true;
                    self.resp.complete = true;
                    let page = wire::error_response(500, "Internal Server Error", &[]);
                    return stream.write_all(&page).await.map_err(drop);
                }
                return Err(());
            }
        };
        let (file, len) = file;
        let mut out = Vec::new();
        if !self.resp.head_written {
            self.head(&mut out, Some(len));
        }
        let send_len = match self.resp.length_left {
            Some(l) => l.min(len),
            None => len,
        };
        if self.resp.omit {
            stream.write_all(&out).await.map_err(drop)?;
            return Ok(());
        }
        if self.resp.chunked && send_len == 0 {
            out.extend_from_slice(wire::LAST_CHUNK);
            return stream.write_all(&out).await.map_err(drop);
        }
        if self.resp.chunked {
            wire::push_chunk_size(&mut out, send_len as usize);
        }
        stream.write_all(&out).await.map_err(drop)?;
        let sent = stream.send_file(&file, 0, send_len).await.map_err(drop)?;
        self.resp.sent += sent;
        if let Some(l) = self.resp.length_left.as_mut() {
            *l -= sent.min(*l);
        }
        if self.resp.chunked {
            stream.write_all(b"\r\n0\r\n\r\n").await.map_err(drop)?;
        }
        if sent < send_len {
            self.resp.close = true;
        }
        Ok(())
    }
}
