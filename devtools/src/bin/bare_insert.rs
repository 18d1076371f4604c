//! The database half of the benchmark's floor for a cold callback: in a fresh process, one connection as the
//! function makes it on RDS (TLS verify-full with rustls and ring, SCRAM) and one `INSERT ... RETURNING`, timed
//! inside the process, so the floor does not count a second process start. `bench` runs it under the same CPU
//! share as the function it compares with.
//!
//! ```sh
//! PGHOST=localhost PGPORT=5432 PGUSER=app PGPASSWORD=... PGDATABASE=... PGSSLROOTCERT=ca.crt \
//!   cargo run --release -p devtools --bin bare_insert -- CODE STATE
//! ```
//!
//! Always verify-full: the certificate must chain to `PGSSLROOTCERT` (a PEM file) and name `PGHOST`.
//! It prints one JSON line: the new row's `id`, and `connect_ns` (the TLS configuration read from the CA file, TCP,
//! TLS, SCRAM) and `total_ns` (that and the insert's round trip), both from inside `main`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devtools::BARE_INSERT;
use postgres::config::SslMode;
use postgres::types::Type;
use rustls::crypto::ring;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

const USAGE: &str = "usage: bare_insert CODE STATE (with PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and \
                     PGSSLROOTCERT set)";

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bare_insert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set ({USAGE})"))
}

fn run() -> Result<serde_json::Value, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [code, state] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let host = var("PGHOST")?;
    let port: u16 = var("PGPORT")?.parse().map_err(|e| format!("PGPORT: {e}"))?;
    let (user, password, dbname) = (var("PGUSER")?, var("PGPASSWORD")?, var("PGDATABASE")?);
    let root_file = var("PGSSLROOTCERT")?;

    let started = Instant::now();
    let pem = std::fs::read(&root_file).map_err(|e| format!("PGSSLROOTCERT {root_file}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("PGSSLROOTCERT {root_file}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("PGSSLROOTCERT {root_file}: {e}"))?;
    }
    let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client = postgres::Config::new()
        .host(&host)
        .port(port)
        .user(&user)
        .password(&password)
        .dbname(&dbname)
        .ssl_mode(SslMode::Require)
        .connect_timeout(Duration::from_secs(10))
        .connect(MakeRustlsConnect::new(tls))
        .map_err(|e| format!("connect: {e}"))?;
    let connected = started.elapsed();
    let rows = client
        .query_typed(BARE_INSERT, &[(code, Type::TEXT), (state, Type::TEXT)])
        .map_err(|e| format!("insert: {e}"))?;
    let total = started.elapsed();
    let id: i64 = rows
        .first()
        .ok_or("the insert returned no row")?
        .try_get(0)
        .map_err(|e| format!("insert: {e}"))?;
    Ok(serde_json::json!({
        "id": id,
        "connect_ns": connected.as_nanos() as u64,
        "total_ns": total.as_nanos() as u64,
    }))
}
