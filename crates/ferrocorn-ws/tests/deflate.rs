//! permessage-deflate through the codec: the RFC 7692 examples, client messages compressed with
//! flate2 (as a browser would), server messages read back with flate2, context takeover both
//! ways, and the inflated size limit. Every wire is also fed in other cuts (`common::run`).

mod common;

use common::*;
use ferrocorn_ws::handshake::negotiate_deflate;
use ferrocorn_ws::{DeflateParams, Event, WsCodec, WsConfig};
use flate2::Decompress;

fn with_deflate(max: usize, params: DeflateParams) -> WsConfig {
    WsConfig {
        max_message_size: max,
        deflate: Some(params),
    }
}

fn takeover() -> DeflateParams {
    DeflateParams::default()
}

fn no_takeover() -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateParams::default()
    }
}

/// A compressed client message in one frame (RSV1 set).
fn compressed(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_bits(0xC0 | opcode, payload)
}

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn rfc_7692_examples() {
    let config = with_deflate(0, takeover());
    // 7.2.3.1: "Hello" in one compressed frame.
    assert_eq!(
        run(config, &compressed(TEXT, &HELLO)),
        (vec![text("Hello")], None)
    );
    // 7.2.3.1: the same, fragmented after three bytes.
    let mut wire = frame_bits(0x40 | TEXT, &HELLO[..3]);
    wire.extend(frame(true, CONT, &HELLO[3..]));
    assert_eq!(run(config, &wire), (vec![text("Hello")], None));
    // 7.2.3.2: the second "Hello" refers back to the first (context takeover).
    let mut wire = compressed(TEXT, &HELLO);
    wire.extend(compressed(TEXT, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
    assert_eq!(
        run(config, &wire),
        (vec![text("Hello"), text("Hello")], None)
    );
    // 7.2.3.3: "Hello" in a stored (uncompressed) DEFLATE block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(
        run(config, &compressed(TEXT, &stored)),
        (vec![text("Hello")], None)
    );
    // 7.2.3.4: a final (BFINAL) block, padded with a zero byte.
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(
        run(config, &compressed(TEXT, &bfinal)),
        (vec![text("Hello")], None)
    );
}

#[test]
fn server_compresses_hello_as_the_rfc_does() {
    let mut codec = WsCodec::new(with_deflate(0, takeover()));
    let mut out = Vec::new();
    codec.encode_text("Hello", &mut out);
    let (b0, payload) = server_frame(&out);
    assert_eq!(b0, 0xC1, "FIN, RSV1, text");
    assert_eq!(payload, HELLO);
}

#[test]
fn client_messages_with_context_takeover() {
    let mut z = compressor();
    let messages = ["first message", "first message again", "", "ünïcödé ✓", "x"];
    let mut wire = Vec::new();
    for m in messages {
        wire.extend(compressed(TEXT, &deflate(&mut z, m.as_bytes())));
    }
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 97) as u8).collect();
    wire.extend(compressed(BINARY, &deflate(&mut z, &big)));
    // An uncompressed message between compressed ones leaves the window alone.
    wire.extend(msg(TEXT, b"plain"));
    wire.extend(compressed(TEXT, &deflate(&mut z, b"first message")));
    let (events, err) = run(with_deflate(0, takeover()), &wire);
    assert_eq!(err, None);
    let mut expected: Vec<Event> = messages.iter().map(|m| text(m)).collect();
    expected.extend([Event::Binary(big), text("plain"), text("first message")]);
    assert_eq!(events, expected);
}

#[test]
fn client_without_context_takeover() {
    let mut wire = Vec::new();
    for m in ["same words", "same words", "same words"] {
        let mut z = compressor();
        wire.extend(compressed(TEXT, &deflate(&mut z, m.as_bytes())));
    }
    for params in [takeover(), no_takeover()] {
        let (events, err) = run(with_deflate(0, params), &wire);
        assert_eq!(err, None);
        assert_eq!(events, vec![text("same words"); 3]);
    }
}

#[test]
fn client_no_context_takeover_resets_the_decompressor() {
    // The second message refers back to the first: fine with takeover; without it the
    // server's window is empty, so the back-reference cannot give "Hello" again (miniz_oxide
    // reads an emptied window as zeros where zlib would refuse the distance).
    let mut wire = compressed(TEXT, &HELLO);
    wire.extend(compressed(TEXT, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
    let (events, _) = run(with_deflate(0, no_takeover()), &wire);
    assert_eq!(events[0], text("Hello"));
    assert_ne!(events.get(1), Some(&text("Hello")));
}

#[test]
fn fragmented_compressed_message_with_control_frames_between() {
    let mut z = compressor();
    let text_in = "a fragmented compressed message ✓ ".repeat(50);
    let payload = deflate(&mut z, text_in.as_bytes());
    let third = payload.len() / 3;
    let mut wire = frame_bits(0x40 | TEXT, &payload[..third]);
    wire.extend(msg(PING, b"x"));
    wire.extend(frame(false, CONT, &payload[third..2 * third]));
    wire.extend(msg(PONG, b""));
    wire.extend(frame(true, CONT, &payload[2 * third..]));
    let (events, err) = run(with_deflate(0, takeover()), &wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            Event::Ping(b"x".to_vec()),
            Event::Pong(vec![]),
            text(&text_in)
        ]
    );
}

#[test]
fn server_messages_read_back_with_flate2() {
    for (params, reset) in [(takeover(), false), (no_takeover(), true)] {
        let mut codec = WsCodec::new(with_deflate(0, params));
        let mut client = Decompress::new(false);
        let mut sizes = Vec::new();
        for m in [
            "repeat me please",
            "repeat me please",
            "",
            "repeat me please",
        ] {
            let mut out = Vec::new();
            codec.encode_text(m, &mut out);
            let (b0, payload) = server_frame(&out);
            assert_eq!(b0, 0xC1);
            sizes.push(payload.len());
            if reset {
                client = Decompress::new(false);
            }
            assert_eq!(inflate(&mut client, payload), m.as_bytes());
        }
        // With takeover the repeat is a short back-reference; without it, the same size.
        assert_eq!(sizes[0] > sizes[1], !reset, "{sizes:?}");
        let mut out = Vec::new();
        let big = vec![b'z'; 300_000];
        codec.encode_binary(&big, &mut out);
        let (b0, payload) = server_frame(&out);
        assert_eq!(b0, 0xC2);
        assert!(payload.len() < 2000);
        if reset {
            client = Decompress::new(false);
        }
        assert_eq!(inflate(&mut client, payload), big);
    }
}

#[test]
fn inflated_size_limit() {
    let mut z = compressor();
    let exact = deflate(&mut z, &[b'a'; 1000]);
    let config = with_deflate(1000, takeover());
    assert_eq!(run(config, &compressed(TEXT, &exact)).1, None);
    let mut z = compressor();
    let over = deflate(&mut z, &[b'a'; 1001]);
    assert_eq!(error_code(config, &compressed(TEXT, &over)), Some(1009));
    // Two fragments, each far under the limit on the wire, too big together once inflated.
    let mut z = compressor();
    let mut whole = vec![b'a'; 600];
    whole.extend([b'b'; 600]);
    let payload = deflate(&mut z, &whole);
    let half = payload.len() / 2;
    let mut wire = frame_bits(0x40 | TEXT, &payload[..half]);
    wire.extend(frame(true, CONT, &payload[half..]));
    assert_eq!(error_code(config, &wire), Some(1009));
}

#[test]
fn decompression_bomb_is_refused_without_inflating_it() {
    let mut z = compressor();
    let bomb = deflate(&mut z, &vec![0u8; 50_000_000]);
    assert!(bomb.len() < 100_000);
    let mut codec = WsCodec::new(with_deflate(1 << 20, takeover()));
    codec.feed(&compressed(BINARY, &bomb));
    assert_eq!(codec.next_event().map_err(|e| e.code), Err(1009));
    assert_eq!(codec.buffered_len(), 0);
}

#[test]
fn compressed_frame_over_the_limit_is_refused_from_its_header() {
    let mut codec = WsCodec::new(with_deflate(100, takeover()));
    codec.feed(&[0xC2, 0x80 | 126, 0x01, 0x00]);
    assert_eq!(codec.next_event().map_err(|e| e.code), Err(1009));
}

#[test]
fn invalid_utf8_inside_a_compressed_message() {
    let mut z = compressor();
    let bad = deflate(&mut z, &[b'o', b'k', 0xFF, b'!']);
    let config = with_deflate(0, takeover());
    assert_eq!(error_code(config, &compressed(TEXT, &bad)), Some(1007));
    let mut z = compressor();
    let cut = deflate(&mut z, &[b'a', 0xE2, 0x82]);
    assert_eq!(error_code(config, &compressed(TEXT, &cut)), Some(1007));
    let mut z = compressor();
    let binary = deflate(&mut z, &[0xFF]);
    assert_eq!(run(config, &compressed(BINARY, &binary)).1, None);
}

#[test]
fn rsv1_rules_with_deflate() {
    let config = with_deflate(0, takeover());
    assert_eq!(
        error_code(config, &frame_bits(0xC9, b"")),
        Some(1002),
        "ping"
    );
    assert_eq!(
        error_code(config, &frame_bits(0xC8, b"")),
        Some(1002),
        "close"
    );
    let mut wire = frame_bits(0x40 | TEXT, &HELLO[..3]);
    wire.extend(frame_bits(0xC0, &HELLO[3..]));
    assert_eq!(
        error_code(config, &wire),
        Some(1002),
        "RSV1 on continuation"
    );
    assert_eq!(
        error_code(config, &frame_bits(0xE1, &HELLO)),
        Some(1002),
        "RSV2 is still reserved"
    );
}

#[test]
fn corrupt_compressed_data_is_a_protocol_error() {
    let config = with_deflate(0, takeover());
    // Block type 3 is reserved in DEFLATE.
    assert_eq!(error_code(config, &compressed(BINARY, &[0x07])), Some(1002));
    // A stored block whose length check fails.
    let bad_stored = [0x00, 0x05, 0x00, 0x00, 0x00, b'H'];
    assert_eq!(
        error_code(config, &compressed(BINARY, &bad_stored)),
        Some(1002)
    );
}

#[test]
fn negotiated_params_drive_the_codec() {
    let (params, header) = negotiate_deflate(&[
        "permessage-deflate; server_no_context_takeover; client_max_window_bits",
    ])
    .unwrap();
    assert_eq!(header, "permessage-deflate; server_no_context_takeover");
    let mut codec = WsCodec::new(with_deflate(0, params));
    let (mut first, mut second) = (Vec::new(), Vec::new());
    codec.encode_text("Hello", &mut first);
    codec.encode_text("Hello", &mut second);
    assert_eq!(first, second, "no context kept between messages");
}
