//! The server's side of a WebSocket connection after the handshake: client bytes in, events
//! out; messages in, frame bytes out.
//!
//! Owns: frame payloads, message reassembly, UTF-8 checks, the size limit, close frame
//! payloads, and the choice to compress. It must not do I/O, answer pings or close frames on
//! its own, or track the closing handshake beyond "a close frame arrived": those are the
//! caller's decisions.

use crate::close::{valid_close_code, ProtocolError};
use crate::deflate::{Deflater, Inflater};
use crate::frame::{
    apply_mask, parse_header, write_header, Context, Header, OpCode, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN,
};
use crate::handshake::DeflateParams;

/// How the codec is set up; fixed for the connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// The largest frame payload, reassembled message and inflated message accepted from the
    /// client, in bytes; 0 is unlimited. Control frames are bounded at 125 bytes by the protocol
    /// and are not counted.
    pub max_message_size: usize,
    /// The permessage-deflate settings from `negotiate_deflate`, if the handshake agreed any.
    pub deflate: Option<DeflateParams>,
}

impl Default for WsConfig {
    /// A 16 MiB limit and no compression.
    fn default() -> Self {
        WsConfig {
            max_message_size: 16 * 1024 * 1024,
            deflate: None,
        }
    }
}

/// What the client sent: a whole message or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    /// The caller should answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The client started the closing handshake. `code` is `None` for an empty close frame
    /// (report 1005 upward); a present code has been checked with `valid_close_code`. The codec
    /// reads nothing after this.
    Close {
        code: Option<u16>,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// A close frame arrived; later bytes are dropped unread.
    Closed,
    Failed(ProtocolError),
}

/// The data message being reassembled.
#[derive(Default)]
struct Message {
    /// `Text` or `Binary` while a message is open, `None` between messages.
    kind: Option<OpCode>,
    compressed: bool,
    /// Unmasked (and inflated) payload so far.
    data: Vec<u8>,
    /// `data[..checked]` is valid UTF-8; a text message's incomplete last character waits
    /// after it for the next bytes.
    checked: usize,
}

/// The frame whose payload is being read.
#[derive(Clone, Copy)]
struct Frame {
    header: Header,
    received: u64,
}

/// A sans-IO WebSocket codec for the server role.
///
/// Input: [`feed`](Self::feed) appends bytes read from the socket to an internal buffer;
/// [`next_event`](Self::next_event) then returns events until `Ok(None)`, which means "feed
/// more". Data frame payloads are consumed as they arrive, so after `Ok(None)` the buffer
/// holds at most a partial frame header or a partial control frame (under 140 bytes) and the
/// message in progress, which the size limit bounds. Feed what one read returned, then drain
/// the events, to keep memory within that bound.
///
/// Output: the `encode_*` methods append one complete, unmasked frame to `out`.
pub struct WsCodec {
    limit: usize,
    deflate: Option<DeflateParams>,
    state: State,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    frame: Option<Frame>,
    message: Message,
    /// Created with the first compressed message each way, so connections that never use
    /// compression never pay for the DEFLATE state.
    inflater: Option<Inflater>,
    deflater: Option<Deflater>,
}

impl std::fmt::Debug for WsCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The buffers and DEFLATE states are large and say little; their size says enough.
        f.debug_struct("WsCodec")
            .field("limit", &self.limit)
            .field("deflate", &self.deflate)
            .field("state", &self.state)
            .field("message_open", &self.message.kind.is_some())
            .field("buffered_len", &self.buffered_len())
            .finish_non_exhaustive()
    }
}

/// Above this, an emptied input buffer gives its memory back.
const KEEP_BUF_CAPACITY: usize = 64 * 1024;

impl WsCodec {
    pub fn new(config: WsConfig) -> Self {
        WsCodec {
            limit: config.max_message_size,
            deflate: config.deflate,
            state: State::Open,
            buf: Vec::new(),
            pos: 0,
            frame: None,
            message: Message::default(),
            inflater: None,
            deflater: None,
        }
    }

    /// Appends bytes received from the client. Ignored once a close frame arrived or the input
    /// failed.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.state != State::Open {
            return;
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        if self.buf.is_empty() && self.buf.capacity() > KEEP_BUF_CAPACITY {
            self.buf = Vec::new();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held for the client's input: unread input plus the message being reassembled.
    /// The caller can stop reading from the socket while this is high.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos + self.message.data.len()
    }

    /// The next event from the bytes fed so far; `Ok(None)` when more bytes are needed, and
    /// always after a `Close` event.
    ///
    /// # Errors
    ///
    /// The client broke the protocol; the error carries the close code to send. The error
    /// repeats on every later call, and fed bytes are dropped.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        match self.state {
            State::Failed(e) => return Err(e),
            State::Closed => return Ok(None),
            State::Open => {}
        }
        let result = self.step();
        match &result {
            Err(e) => self.stop(State::Failed(*e)),
            Ok(Some(Event::Close { .. })) => self.stop(State::Closed),
            Ok(_) => {}
        }
        result
    }

    fn stop(&mut self, state: State) {
        self.state = state;
        self.buf = Vec::new();
        self.pos = 0;
        self.message = Message::default();
        self.frame = None;
    }

    fn step(&mut self) -> Result<Option<Event>, ProtocolError> {
        loop {
            let frame = match self.frame {
                Some(frame) => frame,
                None => match self.read_header()? {
                    Some(frame) => frame,
                    None => return Ok(None),
                },
            };
            let header = frame.header;
            if header.opcode.is_control() {
                return self.read_control(header);
            }
            let available = (self.buf.len() - self.pos) as u64;
            let take = (header.len - frame.received).min(available) as usize;
            self.read_payload(header, frame.received, take)?;
            let received = frame.received + take as u64;
            if received < header.len {
                self.frame = Some(Frame { header, received });
                return Ok(None);
            }
            self.frame = None;
            if header.fin {
                return self.finish_message().map(Some);
            }
        }
    }

    fn read_header(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let cx = Context {
            deflate: self.deflate.is_some(),
            message_open: self.message.kind.is_some(),
            message_compressed: self.message.compressed,
            message_len: self.message.data.len() as u64,
            limit: self.limit as u64,
        };
        let end = self.buf.len().min(self.pos + MAX_HEADER_LEN);
        let Some(header) = parse_header(&self.buf[self.pos..end], &cx)? else {
            return Ok(None);
        };
        self.pos += header.size;
        if matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            self.message.kind = Some(header.opcode);
            self.message.compressed = header.rsv1;
        }
        let frame = Frame {
            header,
            received: 0,
        };
        self.frame = Some(frame);
        Ok(Some(frame))
    }

    /// Waits for the whole control frame (at most 125 bytes), then turns it into an event.
    fn read_control(&mut self, header: Header) -> Result<Option<Event>, ProtocolError> {
        let len = header.len as usize;
        if self.buf.len() - self.pos < len {
            return Ok(None);
        }
        let mut payload = self.buf[self.pos..self.pos + len].to_vec();
        self.pos += len;
        self.frame = None;
        apply_mask(&mut payload, header.mask, 0);
        Ok(Some(match header.opcode {
            OpCode::Ping => Event::Ping(payload),
            OpCode::Pong => Event::Pong(payload),
            _ => close_event(&payload)?,
        }))
    }

    /// Unmasks the next `take` payload bytes of a data frame in place and adds them to the
    /// message, inflating them if it is compressed.
    fn read_payload(
        &mut self,
        header: Header,
        offset: u64,
        take: usize,
    ) -> Result<(), ProtocolError> {
        let chunk = &mut self.buf[self.pos..self.pos + take];
        self.pos += take;
        apply_mask(chunk, header.mask, offset);
        let message = &mut self.message;
        if !message.compressed {
            message.data.extend_from_slice(chunk);
            return check_utf8(message, self.limit);
        }
        let inflater = inflater_for(&mut self.inflater, self.deflate);
        let inflated = inflater.inflate(chunk, &mut message.data, self.limit);
        // The bytes inflated before a failure are judged first, so the verdict does not depend
        // on where the payload was cut.
        check_utf8(message, self.limit)?;
        inflated
    }

    fn finish_message(&mut self) -> Result<Event, ProtocolError> {
        let mut message = std::mem::take(&mut self.message);
        if message.compressed {
            let inflater = inflater_for(&mut self.inflater, self.deflate);
            let inflated = inflater.finish(&mut message.data, self.limit);
            check_utf8(&mut message, self.limit)?;
            inflated?;
        }
        if message.kind == Some(OpCode::Binary) {
            return Ok(Event::Binary(message.data));
        }
        if message.checked != message.data.len() {
            return Err(ProtocolError::utf8("text message ends inside a character"));
        }
        String::from_utf8(message.data)
            .map(Event::Text)
            .map_err(|_| ProtocolError::utf8("invalid UTF-8 in a text message"))
    }

    /// Appends a text message as one frame.
    pub fn encode_text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.encode_data(OpCode::Text, text.as_bytes(), out);
    }

    /// Appends a binary message as one frame.
    pub fn encode_binary(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.encode_data(OpCode::Binary, data, out);
    }

    fn encode_data(&mut self, opcode: OpCode, data: &[u8], out: &mut Vec<u8>) {
        if let Some(params) = self.deflate {
            let deflater = self
                .deflater
                .get_or_insert_with(|| Deflater::new(params.server_no_context_takeover));
            let start = out.len();
            if deflater.compress(data, out) {
                // The header's size depends on the compressed length, known only now.
                let mut header = Vec::with_capacity(MAX_HEADER_LEN);
                write_header(&mut header, opcode, true, out.len() - start);
                out.splice(start..start, header);
                return;
            }
        }
        write_header(out, opcode, false, data.len());
        out.extend_from_slice(data);
    }

    /// Appends a ping; a payload over 125 bytes is cut to 125.
    pub fn encode_ping(&self, payload: &[u8], out: &mut Vec<u8>) {
        encode_control(OpCode::Ping, payload, out);
    }

    /// Appends a pong (the answer to a ping carries the ping's payload); a payload over 125
    /// bytes is cut to 125.
    pub fn encode_pong(&self, payload: &[u8], out: &mut Vec<u8>) {
        encode_control(OpCode::Pong, payload, out);
    }

    /// Appends a close frame. Without a code the frame is empty and `reason` is not sent;
    /// otherwise the reason is cut at a character boundary to fit the 125-byte payload.
    pub fn encode_close(&self, code: Option<u16>, reason: &str, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
        if let Some(code) = code {
            let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice(&reason.as_bytes()[..end]);
        }
        encode_control(OpCode::Close, &payload, out);
    }
}

/// The decompressor, made on first use (only compressed messages need it).
fn inflater_for(slot: &mut Option<Inflater>, params: Option<DeflateParams>) -> &mut Inflater {
    let reset_each = params.is_some_and(|p| p.client_no_context_takeover);
    slot.get_or_insert_with(|| Inflater::new(reset_each))
}

fn encode_control(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    write_header(out, opcode, false, payload.len());
    out.extend_from_slice(payload);
}

fn close_event(payload: &[u8]) -> Result<Event, ProtocolError> {
    let [hi, lo, reason @ ..] = payload else {
        if payload.is_empty() {
            return Ok(Event::Close {
                code: None,
                reason: String::new(),
            });
        }
        return Err(ProtocolError::protocol("close frame with a 1-byte payload"));
    };
    let code = u16::from_be_bytes([*hi, *lo]);
    if !valid_close_code(code) {
        return Err(ProtocolError::protocol("invalid close code"));
    }
    let reason = std::str::from_utf8(reason)
        .map_err(|_| ProtocolError::utf8("invalid UTF-8 in a close reason"))?;
    Ok(Event::Close {
        code: Some(code),
        reason: reason.to_owned(),
    })
}

/// Checks a text message's new bytes, failing as soon as they can no longer be the start of
/// valid UTF-8. Only the first `limit` bytes count: past them the message is too big anyway,
/// and an inflated message may hold one byte more, which must not decide the verdict.
fn check_utf8(message: &mut Message, limit: usize) -> Result<(), ProtocolError> {
    if message.kind != Some(OpCode::Text) {
        return Ok(());
    }
    let end = if limit == 0 {
        message.data.len()
    } else {
        message.data.len().min(limit)
    };
    match std::str::from_utf8(&message.data[message.checked..end]) {
        Ok(_) => message.checked = end,
        // Cut inside a character that may still complete.
        Err(e) if e.error_len().is_none() => message.checked += e.valid_up_to(),
        Err(_) => return Err(ProtocolError::utf8("invalid UTF-8 in a text message")),
    }
    Ok(())
}
