//! The codec without compression: messages, fragmentation, control frames, every way a client
//! can break the protocol and the close code each earns, the size limit, and the server's
//! frames. Every wire goes through `common::run`, which also feeds it one byte at a time and in
//! other cuts and insists the outcome is the same.

mod common;

use common::*;
use ferrocorn_ws::{close, Event, WsCodec};

#[test]
fn masked_text_and_binary() {
    let mut wire = msg(TEXT, b"Hello");
    wire.extend(msg(BINARY, &[0, 1, 2, 255]));
    wire.extend(msg(TEXT, b""));
    wire.extend(msg(BINARY, b""));
    let (events, err) = run(unlimited(), &wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            text("Hello"),
            Event::Binary(vec![0, 1, 2, 255]),
            text(""),
            Event::Binary(vec![]),
        ]
    );
}

#[test]
fn rfc_6455_masked_hello() {
    // Section 5.7: a single-frame masked text message containing "Hello".
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(run(unlimited(), &wire), (vec![text("Hello")], None));
}

#[test]
fn sixteen_and_sixty_four_bit_lengths() {
    for len in [125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let wire = msg(BINARY, &payload);
        let header = match len {
            0..=125 => 6,
            126..=65535 => 8,
            _ => 14,
        };
        assert_eq!(wire.len(), header + len);
        let (events, err) = common::run_pieces(unlimited(), &wire, &[1, 2, 5, 9, 13, wire.len()]);
        assert_eq!(err, None);
        assert_eq!(events, [Event::Binary(payload.clone())], "{len}");
        assert_eq!(run(limited(len), &wire), (events, None), "at the limit");
    }
}

#[test]
fn fragmented_text_with_a_character_split_across_fragments() {
    // "héllo €" with the two bytes of é and the three of € split between frames.
    let bytes = "héllo €".as_bytes();
    let mut wire = frame(false, TEXT, &bytes[..2]);
    wire.extend(frame(false, CONT, &bytes[2..7]));
    wire.extend(frame(false, CONT, &bytes[7..8]));
    wire.extend(frame(false, CONT, b""));
    wire.extend(frame(true, CONT, &bytes[8..]));
    assert_eq!(run(unlimited(), &wire), (vec![text("héllo €")], None));
}

#[test]
fn control_frames_between_fragments() {
    let mut wire = frame(false, BINARY, b"ab");
    wire.extend(msg(PING, b"p1"));
    wire.extend(frame(false, CONT, b"cd"));
    wire.extend(msg(PONG, b""));
    wire.extend(msg(PING, &[9; 125]));
    wire.extend(frame(true, CONT, b"ef"));
    wire.extend(msg(TEXT, b"next"));
    let (events, err) = run(unlimited(), &wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            Event::Ping(b"p1".to_vec()),
            Event::Pong(vec![]),
            Event::Ping(vec![9; 125]),
            Event::Binary(b"abcdef".to_vec()),
            text("next"),
        ]
    );
}

#[test]
fn close_frames() {
    let empty = msg(CLOSE, b"");
    let closed = |code, reason: &str| Event::Close {
        code,
        reason: reason.to_owned(),
    };
    assert_eq!(run(unlimited(), &empty), (vec![closed(None, "")], None));
    let with_code = msg(CLOSE, &close_payload(1000, ""));
    assert_eq!(run(unlimited(), &with_code).0, [closed(Some(1000), "")]);
    for code in [1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
        let wire = msg(CLOSE, &close_payload(code, "bye ✓"));
        assert_eq!(run(unlimited(), &wire).0, [closed(Some(code), "bye ✓")]);
    }
    let longest = "x".repeat(123);
    let wire = msg(CLOSE, &close_payload(1000, &longest));
    assert_eq!(run(unlimited(), &wire).0, [closed(Some(1000), &longest)]);
}

#[test]
fn nothing_is_read_after_a_close_frame() {
    let mut wire = msg(TEXT, b"a");
    wire.extend(msg(CLOSE, &close_payload(1001, "")));
    wire.extend(msg(TEXT, b"after"));
    wire.extend([0xff, 0xff, 0xff]);
    let (events, err) = run(unlimited(), &wire);
    assert_eq!(err, None);
    assert_eq!(events.len(), 2);
    let mut codec = WsCodec::new(unlimited());
    codec.feed(&wire);
    while codec.next_event().unwrap().is_some() {}
    codec.feed(&msg(TEXT, b"more"));
    assert_eq!(codec.next_event(), Ok(None));
    assert_eq!(codec.buffered_len(), 0);
}

#[test]
fn protocol_errors_close_with_1002() {
    let big_ping = {
        let mut w = vec![0x89, 0x80 | 126, 0, 126];
        w.extend([0; 4 + 126]);
        w
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked", vec![0x81, 0x02, b'h', b'i']),
        ("opcode 3", frame_bits(0x83, b"")),
        ("opcode 7", frame_bits(0x87, b"")),
        ("opcode 0xB", frame_bits(0x8B, b"")),
        ("opcode 0xF", frame_bits(0x8F, b"")),
        ("RSV1 without deflate", frame_bits(0xC1, b"x")),
        ("RSV2", frame_bits(0xA1, b"x")),
        ("RSV3", frame_bits(0x91, b"x")),
        ("fragmented ping", frame_bits(0x09, b"")),
        ("fragmented close", frame_bits(0x08, b"")),
        ("ping over 125", big_ping),
        ("continuation first", frame(true, CONT, b"x")),
        ("close with one byte", msg(CLOSE, &[3])),
        ("16-bit length under 126", {
            let mut w = vec![0x82, 0x80 | 126, 0, 125, 0, 0, 0, 0];
            w.extend([0; 125]);
            w
        }),
        ("64-bit length under 65536", {
            let mut w = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0];
            w.extend([0; 0xFFFF]);
            w
        }),
        (
            "64-bit length top bit",
            vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        ),
    ];
    for (name, wire) in cases {
        assert_eq!(error_code(unlimited(), &wire), Some(1002), "{name}");
        assert!(run(unlimited(), &wire).0.is_empty(), "{name}");
    }
}

#[test]
fn fragmentation_order_errors() {
    let mut new_data_inside = frame(false, TEXT, b"a");
    new_data_inside.extend(msg(TEXT, b"b"));
    let (events, err) = run(unlimited(), &new_data_inside);
    assert!(events.is_empty());
    assert_eq!(err.map(|e| e.code), Some(1002));

    let mut binary_inside = frame(false, BINARY, b"a");
    binary_inside.extend(msg(PING, b""));
    binary_inside.extend(frame(false, BINARY, b"b"));
    let (events, err) = run(unlimited(), &binary_inside);
    assert_eq!(events, [Event::Ping(vec![])]);
    assert_eq!(err.map(|e| e.code), Some(1002));

    let mut cont_after_end = msg(TEXT, b"a");
    cont_after_end.extend(frame(true, CONT, b"b"));
    let (events, err) = run(unlimited(), &cont_after_end);
    assert_eq!(events, [text("a")]);
    assert_eq!(err.map(|e| e.code), Some(1002));
}

#[test]
fn invalid_close_codes() {
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        let wire = msg(CLOSE, &close_payload(code, ""));
        assert_eq!(error_code(unlimited(), &wire), Some(1002), "{code}");
    }
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("lone continuation byte", msg(TEXT, &[b'a', 0x80])),
        ("overlong", msg(TEXT, &[0xC0, 0xAF])),
        ("surrogate", msg(TEXT, &[0xED, 0xA0, 0x80])),
        ("above U+10FFFF", msg(TEXT, &[0xF4, 0x90, 0x80, 0x80])),
        ("0xFF", msg(TEXT, &[0xFF])),
        ("ends mid-character", msg(TEXT, &[b'a', 0xE2, 0x82])),
        ("close reason", msg(CLOSE, &[0x03, 0xE8, 0xFF])),
        (
            "close reason cut",
            msg(CLOSE, &[0x03, 0xE8, b'a', 0xE2, 0x82]),
        ),
        ("fragments end mid-character", {
            let mut w = frame(false, TEXT, &[b'a', 0xE2]);
            w.extend(frame(true, CONT, &[0x82]));
            w
        }),
    ];
    for (name, wire) in cases {
        assert_eq!(error_code(unlimited(), &wire), Some(1007), "{name}");
    }
    // Invalid UTF-8 in a binary message is fine.
    assert_eq!(run(unlimited(), &msg(BINARY, &[0xFF])).1, None);
}

#[test]
fn invalid_utf8_fails_before_the_message_ends() {
    // The first fragment holds a byte that can never start valid UTF-8: refused without
    // waiting for the rest of the message, or even the rest of the frame.
    let first = frame(false, TEXT, &[b'o', b'k', 0xF8, b'x', b'y']);
    let mut codec = WsCodec::new(unlimited());
    codec.feed(&first[..first.len() - 2]);
    assert_eq!(codec.next_event().map_err(|e| e.code), Err(1007));
    // A character cut between fragments is fine until it proves impossible.
    let mut codec = WsCodec::new(unlimited());
    codec.feed(&frame(false, TEXT, &[0xF0, 0x9F]));
    assert_eq!(codec.next_event(), Ok(None));
    codec.feed(&frame(false, CONT, &[0x98]));
    assert_eq!(codec.next_event(), Ok(None));
    codec.feed(&frame(false, CONT, &[0x41]));
    assert_eq!(codec.next_event().map_err(|e| e.code), Err(1007));
}

#[test]
fn size_limit_on_the_frame_header() {
    // 2^62 bytes declared: refused from the ten header bytes, before the mask arrives.
    let mut codec = WsCodec::new(limited(1 << 20));
    codec.feed(&[0x82, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(codec.next_event().map_err(|e| e.code), Err(1009));
    assert_eq!(codec.buffered_len(), 0);
    let over = msg(BINARY, &[0; 101]);
    assert_eq!(error_code(limited(100), &over), Some(1009));
    assert_eq!(run(limited(101), &over).1, None);
    // Even an unlimited codec refuses the top bit.
    let top = [0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(error_code(unlimited(), &top), Some(1002));
}

#[test]
fn size_limit_on_the_reassembled_message() {
    let mut wire = frame(false, TEXT, &[b'a'; 60]);
    wire.extend(msg(PING, &[0; 125]));
    wire.extend(frame(false, CONT, &[b'b'; 40]));
    wire.extend(frame(true, CONT, b""));
    assert_eq!(run(limited(100), &wire).0.len(), 2);
    let mut over = frame(false, TEXT, &[b'a'; 60]);
    over.extend(frame(true, CONT, &[b'b'; 41]));
    let (events, err) = run(limited(100), &over);
    assert!(events.is_empty());
    assert_eq!(err.map(|e| e.code), Some(1009));
    // Refused at the second header, before its payload.
    let mut codec = WsCodec::new(limited(100));
    codec.feed(&over[..over.len() - 41 - 4]);
    assert_eq!(codec.next_event().map_err(|e| e.code), Err(1009));
}

#[test]
fn control_frames_do_not_count_against_the_limit() {
    let mut wire = msg(PING, &[1; 125]);
    wire.extend(msg(CLOSE, &close_payload(1000, &"r".repeat(100))));
    assert_eq!(run(limited(10), &wire).1, None);
}

#[test]
fn buffered_len_tracks_what_is_held() {
    let mut codec = WsCodec::new(unlimited());
    let wire = frame(true, BINARY, &[7; 1000]);
    codec.feed(&wire[..3]);
    assert_eq!(codec.buffered_len(), 3);
    assert_eq!(codec.next_event(), Ok(None));
    // A partial header is kept unread.
    assert_eq!(codec.buffered_len(), 3);
    codec.feed(&wire[3..500]);
    assert_eq!(codec.next_event(), Ok(None));
    // The payload so far moved into the message; nothing else is held.
    assert_eq!(codec.buffered_len(), 500 - 8);
    codec.feed(&wire[500..]);
    assert_eq!(codec.next_event(), Ok(Some(Event::Binary(vec![7; 1000]))));
    assert_eq!(codec.buffered_len(), 0);
}

#[test]
fn errors_are_sticky_and_drop_input() {
    let mut codec = WsCodec::new(unlimited());
    codec.feed(&[0x83]);
    let err = codec.next_event().unwrap_err();
    assert_eq!(err.code, close::PROTOCOL_ERROR);
    codec.feed(&msg(TEXT, b"ignored"));
    assert_eq!(codec.next_event(), Err(err));
    assert_eq!(codec.buffered_len(), 0);
}

#[test]
fn server_frames_are_unmasked_single_frames() {
    let mut codec = WsCodec::new(unlimited());
    let mut out = Vec::new();
    codec.encode_text("Hello", &mut out);
    assert_eq!(out, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    for len in [0, 125, 126, 65535, 65536] {
        out.clear();
        codec.encode_binary(&vec![3; len], &mut out);
        let (b0, payload) = server_frame(&out);
        assert_eq!((b0, payload.len()), (0x82, len));
    }
    out.clear();
    codec.encode_ping(b"hb", &mut out);
    assert_eq!(out, [0x89, 2, b'h', b'b']);
    out.clear();
    codec.encode_pong(&[1; 200], &mut out);
    assert_eq!(server_frame(&out), (0x8A, &[1; 125][..]));
}

#[test]
fn close_frames_from_the_server() {
    let codec = WsCodec::new(unlimited());
    let mut out = Vec::new();
    codec.encode_close(None, "ignored", &mut out);
    assert_eq!(out, [0x88, 0]);
    out.clear();
    codec.encode_close(Some(close::NORMAL), "bye", &mut out);
    assert_eq!(out, [0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']);
    // 122 ASCII bytes then a 3-byte character: the character does not fit in 123 bytes.
    let reason = format!("{}€", "a".repeat(122));
    out.clear();
    codec.encode_close(Some(close::GOING_AWAY), &reason, &mut out);
    let (b0, payload) = server_frame(&out);
    assert_eq!((b0, payload.len()), (0x88, 124));
    assert_eq!(&payload[2..], "a".repeat(122).as_bytes());
    out.clear();
    codec.encode_close(Some(1000), &"é".repeat(100), &mut out);
    let (_, payload) = server_frame(&out);
    assert_eq!(payload.len(), 2 + 122);
    assert!(std::str::from_utf8(&payload[2..]).is_ok());
}

#[test]
fn server_frames_decode_as_client_frames_once_masked() {
    // Sanity check of the two directions against each other: a server frame, masked as a
    // client would, reads back as the same message.
    let mut server = WsCodec::new(unlimited());
    let mut out = Vec::new();
    server.encode_text("round trip ✓", &mut out);
    let (_, payload) = server_frame(&out);
    let (events, err) = run(unlimited(), &msg(TEXT, payload));
    assert_eq!((events, err), (vec![text("round trip ✓")], None));
}

#[test]
fn close_code_constants() {
    assert_eq!(
        [
            close::NORMAL,
            close::GOING_AWAY,
            close::PROTOCOL_ERROR,
            close::ABNORMAL,
            close::INVALID_PAYLOAD,
            close::MESSAGE_TOO_BIG,
            close::INTERNAL_ERROR,
        ],
        [1000, 1001, 1002, 1006, 1007, 1009, 1011]
    );
    assert!(ferrocorn_ws::valid_close_code(close::NORMAL));
    assert!(!ferrocorn_ws::valid_close_code(close::ABNORMAL));
}

#[test]
fn codec_can_move_to_another_thread_and_prints_briefly() {
    fn is_send<T: Send>(_: &T) {}
    let mut codec = WsCodec::new(ferrocorn_ws::WsConfig::default());
    is_send(&codec);
    codec.feed(&frame(false, TEXT, b"abc"));
    assert_eq!(codec.next_event(), Ok(None));
    let shown = format!("{codec:?}");
    assert!(shown.contains("message_open: true"), "{shown}");
    assert!(shown.contains("buffered_len: 3"), "{shown}");
}
