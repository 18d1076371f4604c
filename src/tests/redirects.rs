//! The optional browser redirects: the same decisions and the same rows, answered with a 302.

use super::*;
use devtools::SHAPES;

#[test]
fn redirects_answer_302_in_every_shape_and_store_the_same() {
    let db = database();
    let app = app_with(
        db.env(),
        &[
            ("SUCCESS_REDIRECT_URL", "https://app.example/installed"),
            ("FAILURE_REDIRECT_URL", "https://app.example/failed?lang=ko"),
        ],
    );
    for shape in SHAPES {
        let saved = call(&app, fixture(shape, "success").unwrap()).response;
        assert_eq!(saved["statusCode"], 302, "{shape}");
        assert_eq!(
            saved["headers"]["Location"],
            "https://app.example/installed"
        );
        assert_eq!(saved["headers"]["Referrer-Policy"], "no-referrer");
        let repeat = call(&app, fixture(shape, "repeat").unwrap()).response;
        assert_eq!(
            repeat["headers"]["Location"],
            "https://app.example/installed"
        );
        for (name, reason) in [
            ("forged-state", "forged_state"),
            ("missing-code", "bad_params"),
            ("declined", "declined"),
            ("conflict", "code_taken"),
        ] {
            let failed = call(&app, fixture(shape, name).unwrap()).response;
            assert_eq!(failed["statusCode"], 302, "{shape}/{name}");
            assert_eq!(
                failed["headers"]["Location"],
                format!("https://app.example/failed?lang=ko&reason={reason}")
            );
        }
    }
    assert_eq!(
        db.rows().unwrap().len(),
        3,
        "exactly what the JSON contract stores"
    );

    // Only a success URL: failures keep the JSON contract.
    let success_only = app_with(
        db.env(),
        &[("SUCCESS_REDIRECT_URL", "https://app.example/ok")],
    );
    call(&success_only, fixture("http-api", "forged-state").unwrap())
        .assert_error(403, "Invalid state signature");

    // A server failure goes to the failure page with a generic reason.
    let port = postgres::free_port().unwrap().to_string();
    let down = app_with(
        vec![("PGPORT".into(), port), ("PGUSER".into(), "x".into())],
        &[("FAILURE_REDIRECT_URL", "https://app.example/failed")],
    );
    let answer = call(&down, callback_event("a", &sign("p")));
    assert_eq!(
        answer.response["headers"]["Location"],
        "https://app.example/failed?reason=server_error"
    );
}
