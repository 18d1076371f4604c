//! The hello world that stores a row: the floor of any Lambda built on the design card, warm and cold. Per request
//! it takes `code` and `state` from the event's query string as they are (no decoding, no state check), runs the
//! bare `INSERT ... RETURNING id` on the card's blocking `postgres` client inside `spawn_blocking`, and answers 200
//! with the id. It connects on the first request, over TLS verify-full when `PGSSLROOTCERT` names a CA file (as the
//! function reaches RDS), and sends that first insert unnamed in one round trip, as the function does; from the
//! second request on, a statement prepared once per connection. What it leaves out is what the product adds: the
//! contract, the signature, the bounds, the repeat and conflict handling, the log line.

use std::sync::{Arc, Mutex};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use postgres::config::SslMode;
use postgres::types::Type;
use postgres::{Client, Config, NoTls, Statement};
use rustls::crypto::ring;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The benchmark's bare insert, letter for letter (`devtools::BARE_INSERT`): the bench reads the server's time for
/// both from one pg_stat_statements entry, and would count this one as ours if the texts differed.
const INSERT: &str =
    "insert into cafe24.oauth_authorization_codes (code, state) values ($1, $2) returning id";

/// The connection and, from its second insert on, the prepared statement, kept between requests; only ever
/// touched on the blocking pool.
static CONNECTION: Mutex<Option<(Client, Option<Statement>)>> = Mutex::new(None);

fn connect() -> Result<Client, Error> {
    let var = |name: &str| std::env::var(name).map_err(|e| format!("{name}: {e}"));
    let mut config = Config::new();
    config
        .host(&var("PGHOST")?)
        .port(var("PGPORT")?.parse()?)
        .user(&var("PGUSER")?)
        .password(var("PGPASSWORD")?)
        .dbname(&var("PGDATABASE")?);
    let Ok(root_file) = std::env::var("PGSSLROOTCERT") else {
        return Ok(config.connect(NoTls)?);
    };
    // rustls checks that the certificate chains to the CA and names the host: verify-full.
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&std::fs::read(root_file)?) {
        roots.add(cert?)?;
    }
    let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config
        .ssl_mode(SslMode::Require)
        .connect(MakeRustlsConnect::new(tls))?)
}

fn insert(code: &str, state: &str) -> Result<i64, Error> {
    let mut kept = CONNECTION.lock().map_err(|_| "poisoned")?;
    let first = kept.is_none();
    if first {
        *kept = Some((connect()?, None));
    }
    let Some((client, statement)) = kept.as_mut() else {
        return Err("no connection".into());
    };
    let mut stored = || -> Result<i64, Error> {
        let row = match statement {
            Some(statement) => client.query_one(&*statement, &[&code, &state])?,
            None if first => client
                .query_typed(INSERT, &[(&code, Type::TEXT), (&state, Type::TEXT)])?
                .into_iter()
                .next()
                .ok_or("the insert returned no row")?,
            None => {
                let prepared = client.prepare_typed(INSERT, &[Type::TEXT, Type::TEXT])?;
                client.query_one(&*statement.insert(prepared), &[&code, &state])?
            }
        };
        Ok(row.try_get(0)?)
    };
    let stored = stored();
    if stored.is_err() {
        // Dropped here, on the blocking pool, like everything of the client's.
        *kept = None;
    }
    stored
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
