//! A configuration the function cannot work with fails closed: every request is a 500 and nothing is stored.

use super::*;
use devtools::SHAPES;

#[test]
fn without_a_state_secret_every_request_is_refused() {
    let db = database();
    let env = db.env();
    let app = App::from_lookup(move |name: &str| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    });
    let why = app.service.as_ref().err().cloned().unwrap();
    assert_eq!(why.variable, "EXPECTED_STATE_SECRET");
    for shape in SHAPES {
        for name in ["success", "missing-code", "post"] {
            call(&app, fixture(shape, name).unwrap()).assert_error(500, "server misconfigured");
        }
    }
    assert!(db.rows().unwrap().is_empty());
}

#[test]
fn a_bad_option_fails_closed_naming_the_variable() {
    let db = database();
    for (name, value) in [
        ("SUCCESS_REDIRECT_URL", "http://app.example/ok"),
        ("FAILURE_REDIRECT_URL", "not a url"),
        ("STATE_MAX_AGE_SECONDS", "ten"),
        ("STATE_MAX_AGE_SECONDS", "0"),
        ("STATE_MAX_AGE_SECONDS", "86400"),
        ("PGPORT", "99999"),
        ("PGCONNECT_TIMEOUT", "18446744073709551615"),
        ("STATEMENT_TIMEOUT_SECONDS", "18446744073709551615"),
        ("PGSSLROOTCERT", "system"),
    ] {
        let extra: &[(&str, &str)] = match name {
            // system is refused with a weaker mode than verify-full.
            "PGSSLROOTCERT" => &[(name, value), ("PGSSLMODE", "require")],
            _ => &[(name, value)],
        };
        let app = app_with(db.env(), extra);
        let why = app.service.as_ref().err().cloned().unwrap();
        let named = if name == "PGSSLROOTCERT" {
            "PGSSLMODE"
        } else {
            name
        };
        assert_eq!(why.variable, named, "{why}");
        call(&app, fixture("http-api", "success").unwrap())
            .assert_error(500, "server misconfigured");
    }
    assert!(db.rows().unwrap().is_empty());
}
