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
    // An empty error counts as missing, like any empty value.
    assert_eq!(
        parse(&[("error", "")]),
        Err("Missing params: code, state".into())
    );
    // A description alone, instead of a code, declines too; beside a code it is just another parameter.
    assert_eq!(
        parse(&[("error_description", "denied by the merchant")]),
        Ok("declined None".into())
    );
    assert_eq!(
        parse(&[("error_description", "x"), ("state", "s")]),
        Ok("declined None".into())
    );
    assert_eq!(
        parse(&[("code", "c"), ("state", "s"), ("error_description", "x")]),
        Ok("c s".into())
    );
    assert_eq!(
        parse(&[("error_description", "")]),
        Err("Missing params: code, state".into())
    );
}
