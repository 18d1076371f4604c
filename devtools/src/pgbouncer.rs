//! pgbouncer in transaction mode in front of a test database: the kind of pooler that hands each transaction
//! whichever server connection is free and keeps no named (prepared) statements across them. Debian's package
//! (`apt-get install pgbouncer`, 1.18 on Debian 12); only 1.21 and later can keep them (`max_prepared_statements`).
//! pgbouncer refuses to run as root, so as root it runs as `nobody`, as the PostgreSQL server does, with the same
//! parent-death signal: it outlives no test process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::postgres::{
    SUPERUSER, SUPERUSER_PASSWORD, TestDatabase, as_server_user, free_port, give_to_server_user,
    spawn_owned, temp_dir,
};

type Result<T> = std::result::Result<T, String>;

/// Server connections per (database, user) pool: two, so that consecutive transactions can land on different
/// ones. `server_round_robin` makes them: a released connection goes to the back of the idle list.
pub const SERVER_POOL: usize = 2;

/// What to run when pgbouncer is missing; the tests that need it fail with this rather than skip.
pub const INSTALL: &str = "apt-get install pgbouncer";

/// The pgbouncer binary: Debian's `/usr/sbin/pgbouncer`, else the first on PATH.
pub fn binary() -> Result<PathBuf> {
    let debian = PathBuf::from("/usr/sbin/pgbouncer");
    if is_executable(&debian) {
        return Ok(debian);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("pgbouncer"))
        .find(|path| is_executable(path))
        .ok_or_else(|| {
            format!("pgbouncer is not installed (not at /usr/sbin/pgbouncer, not on PATH): run `{INSTALL}`")
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running pgbouncer on a free 127.0.0.1 port, for one database of a test cluster; killed when dropped.
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    database: TestDatabase,
    child: Mutex<Option<Child>>,
}

impl PgBouncer {
    /// pgbouncer in front of `db`, for the superuser and `users` (name, password): clients log in to pgbouncer
    /// with SCRAM against the plain passwords of its auth file, which it then uses to log in to the server (whose
    /// host connections take SCRAM). Returns once it accepts connections.
    pub fn start(db: &TestDatabase, users: &[(&str, &str)]) -> Result<PgBouncer> {
        let binary = binary()?;
        let dir = temp_dir("pgbouncer")?;
        let port = free_port()?;
        let mut auth = format!("{} {}\n", quoted(SUPERUSER), quoted(SUPERUSER_PASSWORD));
        for (user, password) in users {
            auth.push_str(&format!("{} {}\n", quoted(user), quoted(password)));
        }
        let auth_file = dir.join("userlist.txt");
        fs::write(&auth_file, auth).map_err(|e| format!("{}: {e}", auth_file.display()))?;
        let config = [
            "[databases]".to_owned(),
            format!(
                "{name} = host=127.0.0.1 port={port} dbname={name}",
                name = db.name,
                port = db.port
            ),
            String::new(),
            "[pgbouncer]".to_owned(),
            "listen_addr = 127.0.0.1".to_owned(),
            format!("listen_port = {port}"),
            // No Unix socket: nothing to collide with in /tmp, nothing to clean up.
            "unix_socket_dir =".to_owned(),
            "auth_type = scram-sha-256".to_owned(),
            format!("auth_file = {}", auth_file.display()),
            "pool_mode = transaction".to_owned(),
            format!("default_pool_size = {SERVER_POOL}"),
            format!("min_pool_size = {SERVER_POOL}"),
            "reserve_pool_size = 0".to_owned(),
            "server_round_robin = 1".to_owned(),
            "max_client_conn = 100".to_owned(),
            // tokio-postgres 0.7 sends client_encoding, user, database and application_name at startup, all of
            // which pgbouncer knows; libpq clients (psql, pgbench) pointed at this port by hand add this one,
            // which pgbouncer 1.18 would refuse.
            "ignore_startup_parameters = extra_float_digits".to_owned(),
            // A test that waits on a pool fails in seconds, not after the default two minutes.
            "query_wait_timeout = 15".to_owned(),
            "server_login_retry = 1".to_owned(),
            "log_connections = 0".to_owned(),
            "log_disconnections = 0".to_owned(),
        ]
        .join("\n");
        let config_file = dir.join("pgbouncer.ini");
        fs::write(&config_file, config + "\n")
            .map_err(|e| format!("{}: {e}", config_file.display()))?;
        give_to_server_user(&dir)?;

        let log = fs::File::create(dir.join("pgbouncer.log")).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(&binary);
        command
            .arg(&config_file)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        as_server_user(&mut command);
        let child = spawn_owned(command)?;
        let bouncer = PgBouncer {
            dir,
            port,
            database: db.clone(),
            child: Mutex::new(Some(child)),
        };
        bouncer.wait_ready(Duration::from_secs(15))?;
        Ok(bouncer)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What pgbouncer wrote (its stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// The libpq variables the function reads, for `user` through pgbouncer.
    pub fn env(&self, user: &str, password: &str) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), user.into()),
            ("PGPASSWORD".into(), password.into()),
            ("PGDATABASE".into(), self.database.name.clone()),
        ]
    }

    /// A client connection through pgbouncer.
    pub fn connect(&self, user: &str, password: &str) -> Result<postgres::Client> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(&self.database.name)
            .connect_timeout(Duration::from_secs(5))
            .connect(postgres::NoTls)
            .map_err(|e| format!("through pgbouncer as {user}: {e}"))
    }

    /// Makes `user`'s pool hold its `SERVER_POOL` server connections, idle: that many clients each hold a
    /// transaction at once (each needs a server connection of its own), then end them. Returns the backend pids
    /// seen, one per server connection. Without this the pool grows on demand (or `min_pool_size`'s timer), and
    /// sequential requests could all land on one server connection.
    pub fn fill_pool(&self, user: &str, password: &str) -> Result<Vec<i32>> {
        let mut clients = Vec::new();
        let mut pids = Vec::new();
        for _ in 0..SERVER_POOL {
            let mut client = self.connect(user, password)?;
            let rows = client
                .simple_query("begin; select pg_backend_pid()")
                .map_err(|e| e.to_string())?;
            let pid = rows
                .iter()
                .find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .ok_or("no backend pid")?;
            pids.push(pid.parse::<i32>().map_err(|e| e.to_string())?);
            clients.push(client);
        }
        for mut client in clients {
            client.simple_query("commit").map_err(|e| e.to_string())?;
        }
        pids.sort_unstable();
        pids.dedup();
        if pids.len() != SERVER_POOL {
            return Err(format!(
                "{SERVER_POOL} transactions held at once shared server connections: {pids:?}"
            ));
        }
        Ok(pids)
    }

    fn wait_ready(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let error = match self.connect(SUPERUSER, SUPERUSER_PASSWORD) {
                Ok(mut client) => match client.simple_query("select 1") {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                },
                Err(e) => e,
            };
            if let Ok(mut child) = self.child.lock()
                && let Some(running) = child.as_mut()
                && let Ok(Some(status)) = running.try_wait()
            {
                *child = None;
                return Err(format!("pgbouncer exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "pgbouncer did not accept connections within {limit:?}: {error}\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock()
            && let Some(mut running) = child.take()
        {
            let _ = running.kill();
            let _ = running.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An auth file field: double quotes, a quote doubled.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}
