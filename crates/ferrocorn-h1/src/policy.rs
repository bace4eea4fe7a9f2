//! The header policy applied to each field once its value is final: singletons (Host,
//! Content-Type), the RFC 9112 3.2 Host value, `Expect`, `secure_scheme_headers` and names with
//! `_` (`header_map`), as Gunicorn 27's `_apply_header_policy` does, plus the Host rule.
//!
//! This module judges one complete field at a time; finding fields in the bytes (and deciding
//! when a field is complete) is `headers`' business.

use crate::config::HeaderMapPolicy;
use crate::error::ParseError;
use crate::headers::FieldRules;
use crate::host::valid_host;

/// What the policy learns while walking one section.
#[derive(Debug, Clone)]
pub(crate) struct PolicyState {
    pub scheme: &'static str,
    scheme_set: bool,
    seen_host: bool,
    seen_content_type: bool,
    pub expect_continue: bool,
}

impl PolicyState {
    pub fn new(default_scheme: &'static str) -> Self {
        PolicyState {
            scheme: default_scheme,
            scheme_set: false,
            seen_host: false,
            seen_content_type: false,
            expect_continue: false,
        }
    }

    /// A Host field was seen (RFC 9112 3.2 requires one on HTTP/1.1).
    pub fn seen_host(&self) -> bool {
        self.seen_host
    }

    /// Whether `name` is a singleton field that was already seen.
    pub(crate) fn repeats_singleton(&self, name: &str) -> bool {
        match name {
            "HOST" => self.seen_host,
            "CONTENT-TYPE" => self.seen_content_type,
            _ => false,
        }
    }

    /// Host and Content-Type may appear once (RFC 9110 5.3).
    fn check_singleton(&mut self, name: &str) -> Result<(), ParseError> {
        let seen = match name {
            "HOST" => &mut self.seen_host,
            "CONTENT-TYPE" => &mut self.seen_content_type,
            _ => return Ok(()),
        };
        if *seen {
            return Err(ParseError::InvalidHeader(name.to_string()));
        }
        *seen = true;
        Ok(())
    }
}

/// Whether a name with `_` is kept: `Err` for `header_map=refuse`, `Ok(false)` to drop it.
#[inline]
pub(crate) fn underscore_verdict(name: &str, rules: &FieldRules<'_>) -> Result<bool, ParseError> {
    if !name.contains('_') {
        return Ok(true);
    }
    let forwarded = rules
        .forwarder_headers
        .iter()
        .any(|h| h == name || h == "*");
    if forwarded {
        return Ok(true);
    }
    match rules.header_map {
        HeaderMapPolicy::Dangerous => Ok(true),
        HeaderMapPolicy::Drop => Ok(false),
        HeaderMapPolicy::Refuse => Err(ParseError::InvalidHeaderName(name.to_string())),
    }
}

/// `_apply_header_policy` for a field whose value is final. `Ok(None)` drops the field.
#[inline]
pub(crate) fn apply_policy(
    name: String,
    value: String,
    rules: &FieldRules<'_>,
    state: &mut PolicyState,
) -> Result<Option<(String, String)>, ParseError> {
    state.check_singleton(&name)?;
    if name == "HOST" && !valid_host(&value) {
        return Err(ParseError::InvalidHeader(name));
    }
    if !rules.from_trailer && name == "EXPECT" {
        if value.eq_ignore_ascii_case("100-continue") {
            // RFC 9110 10.1.1: an HTTP/1.0 server must ignore the expectation.
            if rules.version >= (1, 1) {
                state.expect_continue = true;
            }
        } else {
            return Err(ParseError::ExpectationFailed(value));
        }
    }
    if let Some((_, secure_value)) = rules.secure_scheme_headers.iter().find(|(h, _)| *h == name) {
        let scheme = if value == *secure_value {
            "https"
        } else {
            "http"
        };
        if state.scheme_set {
            if scheme != state.scheme {
                return Err(ParseError::InvalidSchemeHeaders);
            }
        } else {
            state.scheme_set = true;
            state.scheme = scheme;
        }
    }
    if underscore_verdict(&name, rules)? {
        Ok(Some((name, value)))
    } else {
        Ok(None)
    }
}
