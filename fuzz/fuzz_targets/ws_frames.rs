//! Fuzz target: the WebSocket codec (ferrocorn-ws), whole and in pieces, with and without
//! permessage-deflate.
//!
//! Feeds the client's bytes to a `WsCodec` whole, in the cuts the input chooses, one byte at a
//! time, and with an empty first feed, and checks that every run gives the same events and the
//! same error (code and reason); that an error repeats on the next call; that after draining,
//! the bytes the codec holds stay within the size limit plus one partial frame; that no message
//! exceeds the limit; and that every event, sent back through the server side (`encode_*`),
//! comes out as an unmasked single frame that flate2 reads back to the same content.
//!
//! Owns only these properties and this target's input layout:
//! - byte 0, settings bits: 0 permessage-deflate negotiated, 1 `server_no_context_takeover`,
//!   2 `client_no_context_takeover`, 3 the rest is frame specs rather than raw wire bytes.
//! - byte 1, `max_message_size`: 0 is unlimited, n is n * n.
//! - byte 2, cutting: as header byte 4 of the ferrocorn-h1 targets (`cut_points`).
//! - the rest: raw client bytes, or frame specs, each a first byte (FIN, RSV bits, opcode, taken
//!   as is), a payload length byte and that many payload bytes; the harness masks each payload
//!   and, if RSV1 is set and deflate negotiated, compresses it first as a client would, so the
//!   fuzzer reaches valid compressed and fragmented messages without having to forge a mask.
#![no_main]

use ferrocorn_h1_fuzz::cut_points;
use ferrocorn_ws::{DeflateParams, Event, ProtocolError, WsCodec, WsConfig};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use libfuzzer_sys::fuzz_target;

const SETTINGS_LEN: usize = 3;
/// What a drained codec may hold beside the message: a partial header or control frame.
const PARTIAL_FRAME: usize = 14 + 125;
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

type Outcome = (Vec<Event>, Option<ProtocolError>);

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, limit, cut], rest)) = data.split_first_chunk::<SETTINGS_LEN>() else {
        return;
    };
    let params = DeflateParams {
        server_no_context_takeover: flags & 2 != 0,
        client_no_context_takeover: flags & 4 != 0,
        ..DeflateParams::default()
    };
    let config = WsConfig {
        max_message_size: usize::from(limit) * usize::from(limit),
        deflate: (flags & 1 != 0).then_some(params),
    };
    let wire = if flags & 8 != 0 {
        build_frames(rest, config.deflate)
    } else {
        rest.to_vec()
    };
    check(config, &wire, cut);
});

fn check(config: WsConfig, wire: &[u8], cut: u8) {
    let len = wire.len();
    let whole = run(config, wire, &[len]);
    let mut ends = cut_points(wire, cut);
    let pieces = run(config, wire, &ends);
    assert_eq!(whole, pieces, "one piece vs cuts at {ends:?}");
    ends.insert(0, 0);
    assert_eq!(whole, run(config, wire, &ends), "an empty first feed");
    let bytes: Vec<usize> = (1..=len).collect();
    assert_eq!(whole, run(config, wire, &bytes), "one byte at a time");
    echo(config, &whole.0);
}

/// Feeds the pieces ending at `ends`, draining events after each, until the first error.
fn run(config: WsConfig, wire: &[u8], ends: &[usize]) -> Outcome {
    let limit = config.max_message_size;
    let mut codec = WsCodec::new(config);
    let mut events = Vec::new();
    let mut fed = 0;
    let mut from = 0;
    for &end in ends {
        codec.feed(&wire[from..end]);
        fed += end - from;
        from = end;
        loop {
            match codec.next_event() {
                Ok(Some(event)) => {
                    if let Event::Text(t) = &event {
                        assert!(limit == 0 || t.len() <= limit, "text over the limit");
                    }
                    if let Event::Binary(b) = &event {
                        assert!(limit == 0 || b.len() <= limit, "binary over the limit");
                    }
                    events.push(event);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.code, 1002 | 1007 | 1009), "{e:?}");
                    assert_eq!(codec.next_event(), Err(e), "the error repeats");
                    assert_eq!(codec.buffered_len(), 0, "a failed codec holds nothing");
                    return (events, Some(e));
                }
            }
        }
        let held = codec.buffered_len();
        if limit > 0 {
            assert!(
                held <= limit + PARTIAL_FRAME,
                "holds {held} with limit {limit}"
            );
        } else if config.deflate.is_none() {
            assert!(held <= fed, "holds {held} of {fed} fed");
        }
    }
    (events, None)
}

/// Sends every event back through the server side and reads the frames as a client would.
fn echo(config: WsConfig, events: &[Event]) {
    let mut server = WsCodec::new(config);
    let mut client = Decompress::new(false);
    for event in events {
        let mut out = Vec::new();
        let (opcode, content): (u8, &[u8]) = match event {
            Event::Text(t) => {
                server.encode_text(t, &mut out);
                (0x1, t.as_bytes())
            }
            Event::Binary(b) => {
                server.encode_binary(b, &mut out);
                (0x2, b)
            }
            Event::Ping(p) => {
                server.encode_ping(p, &mut out);
                (0x9, p)
            }
            Event::Pong(p) => {
                server.encode_pong(p, &mut out);
                (0xA, p)
            }
            Event::Close { code, reason } => {
                server.encode_close(*code, reason, &mut out);
                let (b0, payload) = split_server_frame(&out);
                assert_eq!(b0, 0x88);
                match code {
                    None => assert!(payload.is_empty()),
                    Some(code) => {
                        assert_eq!(payload[..2], code.to_be_bytes());
                        let sent =
                            std::str::from_utf8(&payload[2..]).expect("reason cut on a char");
                        assert!(reason.starts_with(sent) && payload.len() <= 125);
                    }
                }
                continue;
            }
        };
        let (b0, payload) = split_server_frame(&out);
        let compressed = config.deflate.is_some() && opcode < 8;
        assert_eq!(b0, 0x80 | if compressed { 0x40 } else { 0 } | opcode);
        if compressed {
            if config.deflate.is_some_and(|p| p.server_no_context_takeover) {
                client.reset(false);
            }
            assert_eq!(inflate(&mut client, payload), content);
        } else {
            assert_eq!(payload, content);
        }
    }
}

/// (first byte, payload) of exactly one unmasked frame.
fn split_server_frame(bytes: &[u8]) -> (u8, &[u8]) {
    assert_eq!(bytes[1] & 0x80, 0, "server frames are unmasked");
    let (len, at) = match bytes[1] {
        126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
        127 => {
            let mut be = [0; 8];
            be.copy_from_slice(&bytes[2..10]);
            (u64::from_be_bytes(be) as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    assert_eq!(bytes.len(), at + len, "one whole frame");
    (bytes[0], &bytes[at..])
}

fn inflate(z: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(input.len() * 4 + 64);
    let mut rest = &input[..];
    loop {
        let before = z.total_in();
        z.decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .expect("the server's compressed frame inflates");
        rest = &rest[(z.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// Turns frame specs into masked client frames (see the module doc).
fn build_frames(mut specs: &[u8], deflate: Option<DeflateParams>) -> Vec<u8> {
    const MASK: [u8; 4] = [0xA5, 0x0F, 0x3C, 0x96];
    let mut z = Compress::new(Compression::fast(), false);
    let mut wire = Vec::new();
    while let [b0, len, rest @ ..] = specs {
        let take = usize::from(*len).min(rest.len());
        let mut payload = rest[..take].to_vec();
        specs = &rest[take..];
        if b0 & 0x40 != 0 && deflate.is_some() {
            payload = compress(&mut z, &payload);
            if deflate.is_some_and(|p| p.client_no_context_takeover) {
                z.reset();
            }
        }
        wire.push(*b0);
        let n = payload.len();
        if n < 126 {
            wire.push(0x80 | n as u8);
        } else if let Ok(n16) = u16::try_from(n) {
            wire.push(0x80 | 126);
            wire.extend_from_slice(&n16.to_be_bytes());
        } else {
            wire.push(0x80 | 127);
            wire.extend_from_slice(&(n as u64).to_be_bytes());
        }
        wire.extend_from_slice(&MASK);
        wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    }
    wire
}

fn compress(z: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut rest = data;
    loop {
        let before = z.total_in();
        z.compress_vec(rest, &mut out, FlushCompress::Sync)
            .expect("compress");
        rest = &rest[(z.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    out
}
