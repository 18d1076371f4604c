//! The signed state: checked before the database, and its age.

use super::*;

#[test]
fn forged_states_are_403_before_the_database_is_touched() {
    // The database here does not exist: reaching it would be a 500, not a 403.
    let app = app_without_database();
    let good = sign("mall:nonce:1");
    let other_key = StateKey::new("guessed")
        .unwrap()
        .sign("mall:nonce:1")
        .unwrap();
    let truncated = &good[..good.len() - 1];
    for state in [
        other_key.as_str(),
        "no-signature",
        "mall:nonce:1.",
        truncated,
        "a.bad",
    ] {
        call(&app, callback_event("abc", state)).assert_error(403, "Invalid state signature");
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A state per the convention `mall_id:nonce:issued_at`, issued at `t`.
fn issued_at(t: u64) -> String {
    sign(&format!("demomall:n0nce{t}:{t}"))
}

fn codes(db: &TestDatabase) -> Vec<String> {
    db.rows()
        .unwrap()
        .into_iter()
        .map(|(_, code, _)| code)
        .collect()
}

#[test]
fn by_default_a_state_that_says_when_it_was_issued_expires_after_ten_minutes() {
    let db = database();
    let app = app_for(&db);
    let max = crate::state::DEFAULT_MAX_AGE_SECONDS;
    // A margin of a few seconds either side keeps the edges away from the clock ticking during the test.
    assert_eq!(
        call(&app, callback_event("inside", &issued_at(now() - max + 5))).status,
        200
    );
    call(&app, callback_event("outside", &issued_at(now() - max - 5)))
        .assert_error(403, "Expired state");
    call(
        &app,
        callback_event(
            "future",
            &issued_at(now() + crate::state::CLOCK_SKEW_SECONDS + 5),
        ),
    )
    .assert_error(403, "issued in the future");
    // A payload of another form carries no time: its signature alone decides.
    assert_eq!(
        call(&app, callback_event("free", &sign("anything"))).status,
        200
    );
    assert_eq!(codes(&db), ["inside", "free"]);
}

#[test]
fn a_configured_age_requires_the_convention_and_off_checks_only_the_signature() {
    let db = database();
    let strict = app_with(db.env(), &[("STATE_MAX_AGE_SECONDS", "60")]);
    assert_eq!(
        call(&strict, callback_event("fresh", &issued_at(now() - 55))).status,
        200
    );
    call(&strict, callback_event("old", &issued_at(now() - 65))).assert_error(403, "Expired state");
    call(&strict, callback_event("free", &sign("anything")))
        .assert_error(403, "mall_id:nonce:issued_at");
    let off = app_with(db.env(), &[("STATE_MAX_AGE_SECONDS", "off")]);
    assert_eq!(
        call(&off, callback_event("ancient", &issued_at(1_000_000_000))).status,
        200
    );
    assert_eq!(codes(&db), ["fresh", "ancient"]);

    // Refused before the database: with no database at all, still 403.
    let port = postgres::free_port().unwrap().to_string();
    let no_db = app_with(
        vec![("PGPORT".into(), port), ("PGUSER".into(), "x".into())],
        &[],
    );
    assert_eq!(
        call(&no_db, callback_event("x", &issued_at(now() - 3600))).status,
        403
    );
}
