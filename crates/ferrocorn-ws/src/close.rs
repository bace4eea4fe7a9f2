//! Close codes (RFC 6455 section 7.4) and the error that fails a connection.
//!
//! Owns: the close code constants, which codes a peer may send, and [`ProtocolError`]. It must
//! not decide when to close: the codec returns an error and the caller sends the close frame.

use std::fmt;

/// Normal closure.
pub const NORMAL: u16 = 1000;
/// The endpoint is going away (server shutdown, page navigation).
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the framing or handshake rules.
pub const PROTOCOL_ERROR: u16 = 1002;
/// The peer sent a data type the endpoint does not accept.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// Never sent on the wire: a close frame without a code.
pub const NO_STATUS: u16 = 1005;
/// Never sent on the wire: the connection dropped without a close frame.
pub const ABNORMAL: u16 = 1006;
/// A text message or close reason that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// A policy violation (generic refusal).
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame or message over the configured size limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The server hit an unexpected condition (the application failed).
pub const INTERNAL_ERROR: u16 = 1011;

/// Whether a peer may put `code` in a close frame.
///
/// 1000-1003 and 1007-1014 are the registered codes an endpoint may send; 1004 is reserved and
/// 1005, 1006 and 1015 exist only to be reported locally, never sent. 3000-3999 are for
/// libraries and frameworks and 4000-4999 for applications. Everything else (below 1000, the
/// unregistered rest of 1016-2999, 5000 and up) is a protocol error.
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Why the codec refused the peer's bytes, and the close code the server should send.
///
/// After an error the codec is finished: the caller sends a close frame with `code` (and
/// optionally `reason`), then closes the connection without waiting for more frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError {
    /// 1002 (protocol), 1007 (bad UTF-8) or 1009 (too big).
    pub code: u16,
    /// A short description, short enough to fit a close frame's reason.
    pub reason: &'static str,
}

impl ProtocolError {
    pub(crate) const fn protocol(reason: &'static str) -> Self {
        ProtocolError {
            code: PROTOCOL_ERROR,
            reason,
        }
    }

    pub(crate) const fn utf8(reason: &'static str) -> Self {
        ProtocolError {
            code: INVALID_PAYLOAD,
            reason,
        }
    }

    pub(crate) const fn too_big(reason: &'static str) -> Self {
        ProtocolError {
            code: MESSAGE_TOO_BIG,
            reason,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_ranges() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ];
        for code in valid {
            assert!(valid_close_code(code), "{code} should be valid");
        }
        let invalid = [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for code in invalid {
            assert!(!valid_close_code(code), "{code} should be invalid");
        }
    }

    #[test]
    fn display_names_code_and_reason() {
        let e = ProtocolError::too_big("message too big");
        assert_eq!(e.to_string(), "message too big (1009)");
    }
}
