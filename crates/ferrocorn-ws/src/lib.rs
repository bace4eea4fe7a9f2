//! Sans-IO WebSocket codec for the server side of RFC 6455, with permessage-deflate (RFC 7692).
//!
//! Owns: the handshake's header values ([`handshake`]: the accept key, key and version checks,
//! subprotocol and token lists, permessage-deflate negotiation), client frame parsing and
//! message reassembly ([`WsCodec::feed`], [`WsCodec::next_event`]), server frame encoding
//! (`WsCodec::encode_*`), and close codes ([`close`]). It must not touch sockets, timers,
//! Python or HTTP parsing: the worker reads the upgrade request with its HTTP/1 parser, asks
//! [`handshake`] for the values of the 101 response, then moves bytes between the socket and a
//! [`WsCodec`].
//!
//! A connection, in order:
//! 1. Check `Upgrade` and `Connection` with [`handshake::header_has_token`], the key with
//!    [`handshake::valid_key`], the version with [`handshake::valid_version`]; answer 101 with
//!    `Sec-WebSocket-Accept: accept_key(key)`. If [`handshake::negotiate_deflate`] returns
//!    `Some((params, value))`, add `Sec-WebSocket-Extensions: value` and put `params` in
//!    [`WsConfig::deflate`]; otherwise send no extensions header and leave it `None`.
//! 2. Feed every read to [`WsCodec::feed`] and drain [`WsCodec::next_event`] until `Ok(None)`.
//!    On `Err(e)`, send `encode_close(Some(e.code), e.reason)` and close the connection.
//! 3. Answer pings with pongs and a close frame with a close frame; the codec never answers by
//!    itself, and after a `Close` event it reads nothing more.
//!
//! Server frames are never masked and never fragmented: one frame per message.
#![forbid(unsafe_code)]

pub mod close;
mod codec;
mod deflate;
mod frame;
pub mod handshake;

pub use close::{valid_close_code, ProtocolError};
pub use codec::{Event, WsCodec, WsConfig};
pub use handshake::DeflateParams;
