//! Parser settings and their normalisation into effective limits.
//!
//! The server passes the raw setting values; this module applies Gunicorn's clamping rules
//! (`Message.__init__` / `Request.__init__`). It owns no parsing logic.

/// What to do with a request header whose name contains `_` (`header_map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMapPolicy {
    /// Silently discard it (the default). It still counts towards the buffer limit.
    #[default]
    Drop,
    /// Reject the request with InvalidHeaderName.
    Refuse,
    /// Keep it, so `X_Foo` and `X-Foo` collide in the environ.
    Dangerous,
}

/// The request-parsing settings, with Gunicorn's raw values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserConfig {
    pub limit_request_line: i64,
    pub limit_request_fields: i64,
    pub limit_request_field_size: i64,
    pub permit_unconventional_http_method: bool,
    pub permit_unconventional_http_version: bool,
    pub casefold_http_method: bool,
    pub permit_obsolete_folding: bool,
    pub strip_header_spaces: bool,
    pub header_map: HeaderMapPolicy,
    /// Let an HTTP/1.1 request without Host through (a ferrocorn setting for old health
    /// checkers; Gunicorn never requires Host). Duplicate and malformed values are refused anyway.
    pub permit_missing_host: bool,
    /// Underscore header names a trusted peer may send (`*` for all), compared exactly.
    pub forwarder_headers: Vec<String>,
    /// Upper-cased header name and the exact value that means https, honoured from trusted peers.
    pub secure_scheme_headers: Vec<(String, String)>,
    /// The listener is TLS, so the default scheme is https.
    pub is_ssl: bool,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            limit_request_line: 4094,
            limit_request_fields: 100,
            limit_request_field_size: 8190,
            permit_unconventional_http_method: false,
            permit_unconventional_http_version: false,
            casefold_http_method: false,
            permit_obsolete_folding: false,
            strip_header_spaces: false,
            header_map: HeaderMapPolicy::Drop,
            permit_missing_host: false,
            forwarder_headers: vec!["SCRIPT_NAME".to_string(), "PATH_INFO".to_string()],
            secure_scheme_headers: vec![
                ("X-FORWARDED-PROTOCOL".to_string(), "ssl".to_string()),
                ("X-FORWARDED-PROTO".to_string(), "https".to_string()),
                ("X-FORWARDED-SSL".to_string(), "on".to_string()),
            ],
            is_ssl: false,
        }
    }
}

/// Gunicorn's hard cap on the request line (`MAX_REQUEST_LINE`).
pub const MAX_REQUEST_LINE: usize = 8190;
/// The most header fields ever allowed (`MAX_HEADERS`).
pub const MAX_HEADERS: usize = 32768;
/// The field size used when the setting is 0 or negative (`DEFAULT_MAX_HEADERFIELD_SIZE`).
pub const DEFAULT_MAX_HEADERFIELD_SIZE: usize = 8190;

/// The limits in force after Gunicorn's normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, CRLF excluded; 0 means unlimited.
    pub request_line: usize,
    /// Most header (or trailer) fields kept.
    pub fields: usize,
    /// Longest field line, CRLF and folded lines included. Also bounds a chunk-size line.
    pub field_size: usize,
    /// Most bytes of an unfinished header (or trailer) section.
    pub max_buffer_headers: usize,
}

impl ParserConfig {
    /// Applies Gunicorn's rules: a negative line limit becomes 8190, 0 stays unlimited, and
    /// anything above 8190 is clamped; field counts outside 1..=32768 become 32768; a field size
    /// of 0 or less becomes 8190 (so "0 = unlimited" does not hold, as in Gunicorn).
    pub fn limits(&self) -> Limits {
        let request_line = if self.limit_request_line < 0 {
            MAX_REQUEST_LINE
        } else {
            usize::try_from(self.limit_request_line)
                .unwrap_or(MAX_REQUEST_LINE)
                .min(MAX_REQUEST_LINE)
        };
        let fields = match usize::try_from(self.limit_request_fields) {
            Ok(n) if n > 0 && n <= MAX_HEADERS => n,
            _ => MAX_HEADERS,
        };
        let field_size = match usize::try_from(self.limit_request_field_size) {
            Ok(n) if n > 0 => n,
            _ => DEFAULT_MAX_HEADERFIELD_SIZE,
        };
        let max_buffer_headers = fields
            .saturating_mul(field_size.saturating_add(2))
            .saturating_add(4);
        Limits {
            request_line,
            fields,
            field_size,
            max_buffer_headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_gunicorn() {
        let mut cfg = ParserConfig::default();
        let l = cfg.limits();
        assert_eq!((l.request_line, l.fields, l.field_size), (4094, 100, 8190));
        assert_eq!(l.max_buffer_headers, 100 * 8192 + 4);
        cfg.limit_request_line = -1;
        cfg.limit_request_fields = 0;
        cfg.limit_request_field_size = 0;
        let l = cfg.limits();
        assert_eq!(
            (l.request_line, l.fields, l.field_size),
            (8190, 32768, 8190)
        );
        cfg.limit_request_line = 0;
        cfg.limit_request_fields = 40000;
        assert_eq!(cfg.limits().request_line, 0);
        assert_eq!(cfg.limits().fields, 32768);
        cfg.limit_request_line = 9000;
        assert_eq!(cfg.limits().request_line, 8190);
    }
}
