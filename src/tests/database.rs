//! Storing: repeats and conflicts decided by the database, races, and failures that name nothing internal.

use super::*;

#[test]
fn repeats_return_the_same_id_and_conflicts_change_nothing() {
    let db = database();
    let app = app_for(&db);
    let (s1, s2) = (sign("mall:n1"), sign("mall:n2"));
    let first = call(&app, callback_event("c1", &s1));
    assert_eq!(first.status, 200);
    for _ in 0..3 {
        let again = call(&app, callback_event("c1", &s1));
        assert_eq!((again.status, &again.body), (200, &first.body));
    }
    call(&app, callback_event("c1", &s2)).assert_error(409, "code");
    call(&app, callback_event("c2", &s1)).assert_error(409, "state");
    assert_eq!(
        db.rows().unwrap(),
        [(first.body["id"].as_i64().unwrap(), "c1".to_owned(), s1)]
    );
}

#[test]
fn a_table_made_by_hand_without_the_look_up_function_still_tells_repeats_from_conflicts() {
    let db = database();
    // Only what D2 describes: the four columns, code and state each unique; none of sql/schema.sql's extras.
    db.connect()
        .unwrap()
        .batch_execute(
            "drop schema cafe24 cascade; create schema cafe24; \
             create table cafe24.oauth_authorization_codes (id bigserial primary key, code text not null unique, \
             state text not null unique, created_at timestamptz not null default now())",
        )
        .unwrap();
    let app = app_for(&db);
    let (s1, s2) = (sign("mall:h1"), sign("mall:h2"));
    let first = call(&app, callback_event("h1", &s1));
    assert_eq!(first.status, 200, "{}", first.body);
    let again = call(&app, callback_event("h1", &s1));
    assert_eq!((again.status, &again.body), (200, &first.body));
    call(&app, callback_event("h1", &s2)).assert_error(409, "code");
    call(&app, callback_event("h2", &s1)).assert_error(409, "state");
    assert_eq!(db.rows().unwrap().len(), 1);
}

#[test]
fn a_database_failure_is_a_plain_500_that_names_nothing_internal() {
    let app = app_without_database();
    let target = app
        .service
        .as_ref()
        .map(|s| s.database.settings().target(None))
        .unwrap();
    let answer = call(&app, callback_event("abc", &sign("p")));
    answer.assert_error(500, "Database unavailable");
    let text = answer.response.to_string();
    let port = target
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    for internal in ["127.0.0.1", port, "refused", "postgres", "ECONNREFUSED"] {
        assert!(!text.contains(internal), "{internal:?} leaked: {text}");
    }
}

#[test]
fn a_missing_table_is_a_500_and_the_next_request_still_works() {
    let db = database();
    let app = app_for(&db);
    let mut admin = db.connect().unwrap();
    admin
        .batch_execute("alter table cafe24.oauth_authorization_codes rename to moved")
        .unwrap();
    call(&app, callback_event("abc", &sign("p"))).assert_error(500, "Database unavailable");
    admin
        .batch_execute("alter table cafe24.moved rename to oauth_authorization_codes")
        .unwrap();
    assert_eq!(call(&app, callback_event("abc", &sign("p"))).status, 200);
    assert_eq!(db.rows().unwrap().len(), 1);
}

#[test]
fn concurrent_identical_requests_store_one_row_and_agree_on_its_id() {
    let db = database();
    let event = callback_event("race", &sign("race"));
    // Eight instances, each with its own connection: their database work runs on blocking threads at once.
    let apps: Vec<&'static App> = (0..8)
        .map(|_| &*Box::leak(Box::new(app_for(&db))))
        .collect();
    let answers = runtime().block_on(async {
        let tasks: Vec<_> = apps
            .iter()
            .map(|app| tokio::spawn(call_async(app, event.clone())))
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    });
    let mut ids = Vec::new();
    for answer in answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
        ids.push(answer.body["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(db.rows().unwrap().len(), 1);
}
