//! The hello world that stores a row: the warm floor of any Lambda built on the design card. Per request it
//! takes `code` and `state` from the event's query string as they are (no decoding, no state check), runs the
//! bare `INSERT ... RETURNING id` on the card's blocking `postgres` client inside `spawn_blocking` (connected on
//! the first request, the statement prepared once per connection), and answers 200 with the id. What it leaves
//! out is what the product adds: the contract, the signature, the bounds, the repeat and conflict handling, the
//! log line.

use std::sync::Mutex;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use postgres::types::Type;
use postgres::{Client, Config, NoTls, Statement};
use serde_json::{Value, json};

/// The benchmark's bare insert, letter for letter (`devtools::BARE_INSERT`): the bench reads the server's time for
/// both from one pg_stat_statements entry, and would count this one as ours if the texts differed.
const INSERT: &str =
    "insert into cafe24.oauth_authorization_codes (code, state) values ($1, $2) returning id";

/// The connection and its prepared statement, kept between requests; only ever touched on the blocking pool.
static CONNECTION: Mutex<Option<(Client, Statement)>> = Mutex::new(None);

fn connect() -> Result<(Client, Statement), Error> {
    let var = |name: &str| std::env::var(name).map_err(|e| format!("{name}: {e}"));
    let mut client = Config::new()
        .host(&var("PGHOST")?)
        .port(var("PGPORT")?.parse()?)
        .user(&var("PGUSER")?)
        .password(var("PGPASSWORD")?)
        .dbname(&var("PGDATABASE")?)
        .connect(NoTls)?;
    let statement = client.prepare_typed(INSERT, &[Type::TEXT, Type::TEXT])?;
    Ok((client, statement))
}

fn insert(code: &str, state: &str) -> Result<i64, Error> {
    let mut kept = CONNECTION.lock().map_err(|_| "poisoned")?;
    if kept.is_none() {
        *kept = Some(connect()?);
    }
    let Some((client, statement)) = kept.as_mut() else {
        return Err("no connection".into());
    };
    match client.query_one(&*statement, &[&code, &state]) {
        Ok(row) => Ok(row.try_get(0)?),
        Err(e) => {
            // Dropped here, on the blocking pool, like everything of the client's.
            *kept = None;
            Err(e.into())
        }
    }
}

async fn store(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let query = event.payload["rawQueryString"].as_str().unwrap_or_default();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let (Some(code), Some(state)) = (param("code"), param("state")) else {
        return Ok(json!({ "statusCode": 400, "body": "code and state, please" }));
    };
    match tokio::task::spawn_blocking(move || insert(&code, &state)).await? {
        Ok(id) => {
            Ok(json!({ "statusCode": 200, "body": json!({ "ok": true, "id": id }).to_string() }))
        }
        Err(e) => Ok(json!({ "statusCode": 500, "body": e.to_string() })),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(store)).await
}
