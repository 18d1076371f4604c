//! What Cafe24's redirect carries (D8: only `code` and `state`, or `error` when the merchant declined) and the
//! rules a value must meet before anything else looks at it (D3: 400 names the parameter).

use crate::event::HttpRequest;
use crate::state;

/// RFC 6749 A.11: `code = 1*VSCHAR`. Cafe24's codes are a few dozen characters; 512 leaves room, not abuse.
pub const MAX_CODE_LEN: usize = 512;

#[derive(Debug, PartialEq, Eq)]
pub enum Callback<'a> {
    Authorization {
        code: &'a str,
        state: &'a str,
    },
    /// The provider sent `error` instead of a code. Its value is not trusted: only a tidy one is kept.
    Declined {
        error: Option<&'a str>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// Absent or empty; one or both names.
    Missing(Vec<&'static str>),
    Repeated(&'static str),
    Oversized(&'static str, usize),
    Malformed(&'static str, &'static str),
}

impl ParamError {
    pub fn message(&self) -> String {
        match self {
            ParamError::Missing(names) => format!("Missing params: {}", names.join(", ")),
            ParamError::Repeated(name) => format!("Repeated param: {name} must be given once"),
            ParamError::Oversized(name, max) => {
                format!("Oversized param: {name} is longer than {max} characters")
            }
            ParamError::Malformed(name, allowed) => {
                format!("Malformed param: {name} may only hold {allowed}")
            }
        }
    }
}

impl<'a> Callback<'a> {
    pub fn from_request(request: &'a HttpRequest) -> Result<Self, ParamError> {
        // oauth2-proxy's order: a provider error is handled before anything else.
        if let Some(error) = request.values("error").next() {
            return Ok(Callback::Declined {
                error: tidy_error(error),
            });
        }
        let code = single(request, "code");
        let state = single(request, "state");
        let missing: Vec<&'static str> = [("code", &code), ("state", &state)]
            .into_iter()
            .filter(|(_, v)| matches!(v, Err(None)))
            .map(|(name, _)| name)
            .collect();
        if !missing.is_empty() {
            return Err(ParamError::Missing(missing));
        }
        let code = code.map_err(|e| e.unwrap_or(ParamError::Missing(vec!["code"])))?;
        let state = state.map_err(|e| e.unwrap_or(ParamError::Missing(vec!["state"])))?;
        if code.len() > MAX_CODE_LEN {
            return Err(ParamError::Oversized("code", MAX_CODE_LEN));
        }
        if !code.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ParamError::Malformed("code", "visible ASCII characters"));
        }
        if state.len() > state::MAX_STATE_LEN {
            return Err(ParamError::Oversized("state", state::MAX_STATE_LEN));
        }
        if !state.chars().all(state::is_state_char) {
            return Err(ParamError::Malformed("state", "A-Z a-z 0-9 - _ . ~ :"));
        }
        Ok(Callback::Authorization { code, state })
    }
}

/// The one value of `name`: `Err(None)` when absent or empty, `Err(Some(_))` when repeated.
fn single<'a>(request: &'a HttpRequest, name: &'static str) -> Result<&'a str, Option<ParamError>> {
    let mut values = request.values(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(Some(ParamError::Repeated(name)));
    }
    first.filter(|v| !v.is_empty()).ok_or(None)
}

/// OAuth error codes are short ASCII words (`access_denied`); anything else is not repeated back to the client.
fn tidy_error(error: &str) -> Option<&str> {
    let tidy = !error.is_empty()
        && error.len() <= 64
        && error
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    tidy.then_some(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Shape;

    fn request(query: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            shape: Shape::HttpApi,
            method: "GET".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn parse(query: &[(&str, &str)]) -> Result<String, String> {
        match Callback::from_request(&request(query)) {
            Ok(Callback::Authorization { code, state }) => Ok(format!("{code} {state}")),
            Ok(Callback::Declined { error }) => Ok(format!("declined {error:?}")),
            Err(e) => Err(e.message()),
        }
    }

    #[test]
    fn accepts_a_code_and_a_state_and_ignores_other_parameters() {
        assert_eq!(
            parse(&[("code", "abc"), ("state", "p.s"), ("utm", "x")]),
            Ok("abc p.s".into())
        );
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(parse(&[]), Err("Missing params: code, state".into()));
        assert_eq!(parse(&[("state", "s")]), Err("Missing params: code".into()));
        assert_eq!(
            parse(&[("code", "c"), ("state", "")]),
            Err("Missing params: state".into())
        );
        assert_eq!(
            parse(&[("code", "c"), ("code", "c"), ("state", "s")]),
            Err("Repeated param: code must be given once".into())
        );
        assert_eq!(
            parse(&[("code", "c"), ("state", "s"), ("state", "s")]),
            Err("Repeated param: state must be given once".into())
        );
        // A missing parameter is named even when the other one is repeated.
        assert_eq!(
            parse(&[("code", "c"), ("code", "d")]),
            Err("Missing params: state".into())
        );
    }

    #[test]
    fn limits_size_and_alphabet() {
        let long = "c".repeat(MAX_CODE_LEN + 1);
        assert!(
            parse(&[("code", &long), ("state", "s")])
                .unwrap_err()
                .starts_with("Oversized param: code")
        );
        assert!(parse(&[("code", &long[1..]), ("state", "s")]).is_ok());
        assert!(
            parse(&[("code", "a\nb"), ("state", "s")])
                .unwrap_err()
                .starts_with("Malformed param: code")
        );
        assert!(
            parse(&[("code", "몰"), ("state", "s")])
                .unwrap_err()
                .starts_with("Malformed param: code")
        );
        let long = "s".repeat(state::MAX_STATE_LEN + 1);
        assert!(
            parse(&[("code", "c"), ("state", &long)])
                .unwrap_err()
                .starts_with("Oversized param: state")
        );
        assert!(
            parse(&[("code", "c"), ("state", "a b")])
                .unwrap_err()
                .starts_with("Malformed param: state")
        );
    }

    #[test]
    fn a_provider_error_comes_first() {
        assert_eq!(
            parse(&[("error", "access_denied"), ("error_description", "no")]),
            Ok("declined Some(\"access_denied\")".into())
        );
        assert_eq!(
            parse(&[("code", "c"), ("state", "s"), ("error", "<script>")]),
            Ok("declined None".into())
        );
        assert_eq!(parse(&[("error", "")]), Ok("declined None".into()));
    }
}
