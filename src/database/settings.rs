//! The connection's configuration, read once from the environment: libpq's variables with libpq's meanings and
//! defaults, and the credentials (a password, a Secrets Manager secret, or an RDS IAM token).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::tls::{RootCerts, SslMode};
use crate::config::{self, ConfigError, Lookup};
use crate::extension::SecretsExtension;
use crate::rds_iam::{self, AwsCredentials};
use crate::secret::Secret;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Lambda runs an invocation for 15 minutes at most: a longer bound could never run out, so it is a typo.
const MAX_TIMEOUT_SECONDS: u64 = 900;

/// How the function proves who it is to the database.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `PGPASSWORD`, or none (trust, local use).
    Password(Option<Secret<String>>),
    /// `PGSECRET_ID`: read through the Parameters and Secrets extension on connect; read again once when the
    /// server refuses it (RDS rotates a managed secret every 7 days by default).
    Secret {
        id: String,
        extension: SecretsExtension,
    },
    /// `PGAUTH=iam`: a token signed from the execution role for every connection, so none is reused expired.
    Iam {
        region: String,
        credentials: AwsCredentials,
    },
}

#[derive(Debug, Clone)]
pub struct Settings {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    /// The login name (`USER`), libpq's last resort for the user name.
    login: Option<String>,
    dbname: Option<String>,
    application_name: Option<String>,
    pub auth: Auth,
    pub ssl_mode: SslMode,
    pub root_certs: Option<RootCerts>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

/// Where to connect and as whom, once the secret (if any) is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
}

impl Settings {
    pub fn from_lookup(
        var: &impl Lookup,
        extension: &SecretsExtension,
    ) -> Result<Self, ConfigError> {
        let host = var("PGHOST").map(one_host).transpose()?;
        let port = var("PGPORT").map(port).transpose()?;
        let auth = auth(var, extension)?;
        let root_certs = var("PGSSLROOTCERT")
            .map(|value| RootCerts::parse(&value, var("LAMBDA_TASK_ROOT").as_deref()));
        let ssl_mode = ssl_mode(var, &auth, root_certs.as_ref())?;
        let settings = Settings {
            host,
            port,
            user: var("PGUSER"),
            login: var("USER"),
            dbname: var("PGDATABASE"),
            application_name: var("PGAPPNAME"),
            auth,
            ssl_mode,
            root_certs,
            connect_timeout: config::seconds(
                var,
                "PGCONNECT_TIMEOUT",
                DEFAULT_CONNECT_TIMEOUT,
                MAX_TIMEOUT_SECONDS,
            )?,
            statement_timeout: config::seconds(
                var,
                "STATEMENT_TIMEOUT_SECONDS",
                DEFAULT_STATEMENT_TIMEOUT,
                MAX_TIMEOUT_SECONDS,
            )?,
        };
        // Without a secret that may carry it, the user must be known now.
        if !matches!(settings.auth, Auth::Secret { .. }) {
            settings.endpoint(None)?;
        }
        Ok(settings)
    }

    /// The variables win; a secret's fields fill what they leave out; then libpq's defaults.
    pub fn endpoint(&self, secret: Option<&DatabaseSecret>) -> Result<Endpoint, ConfigError> {
        let user = self
            .user
            .clone()
            .or_else(|| secret.and_then(|s| s.username.clone()))
            .or_else(|| self.login.clone())
            .ok_or_else(|| {
                ConfigError::new("PGUSER", "is not set (nor USER, nor the secret's username)")
            })?;
        Ok(Endpoint {
            // libpq would try a Unix socket; a Lambda has none, so the loopback host is the useful default.
            host: self
                .host
                .clone()
                .or_else(|| secret.and_then(|s| s.host.clone()))
                .unwrap_or_else(|| "localhost".to_owned()),
            port: self.port.or(secret.and_then(|s| s.port)).unwrap_or(5432),
            dbname: self
                .dbname
                .clone()
                .or_else(|| secret.and_then(|s| s.dbname.clone()))
                .unwrap_or_else(|| user.clone()),
            user,
        })
    }

    /// For log lines: where we connect, never a password.
    pub fn target(&self, secret: Option<&DatabaseSecret>) -> String {
        match self.endpoint(secret) {
            Ok(e) => format!("{}@{}:{}/{}", e.user, e.host, e.port, e.dbname),
            Err(_) => "(user from the secret)".to_owned(),
        }
    }

    /// The driver's configuration for one connection attempt; an IAM token is signed here, at `now`.
    pub fn config(
        &self,
        secret: Option<&DatabaseSecret>,
        now: SystemTime,
    ) -> Result<postgres::Config, ConfigError> {
        let endpoint = self.endpoint(secret)?;
        let mut config = postgres::Config::new();
        config
            .host(&endpoint.host)
            .port(endpoint.port)
            .user(&endpoint.user)
            .dbname(&endpoint.dbname)
            .ssl_mode(self.ssl_mode.for_postgres())
            // tokio-postgres bounds only the TCP connect with it; the caller bounds the whole attempt.
            .connect_timeout(self.connect_timeout)
            // Sent data unacknowledged this long means the path is gone: fail, so the request can reconnect.
            .tcp_user_timeout(self.statement_timeout)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(name) = &self.application_name {
            config.application_name(name);
        }
        match &self.auth {
            Auth::Password(Some(password)) => {
                config.password(password.expose());
            }
            Auth::Password(None) => {}
            Auth::Secret { .. } => {
                if let Some(secret) = secret {
                    config.password(secret.password.expose());
                }
            }
            Auth::Iam {
                region,
                credentials,
            } => {
                config.password(rds_iam::auth_token(
                    &endpoint.host,
                    endpoint.port,
                    &endpoint.user,
                    region,
                    credentials,
                    now,
                ));
            }
        }
        Ok(config)
    }
}

/// One host. libpq takes a comma-separated list and tries each in turn; here the list is refused, because an RDS
/// cluster endpoint or RDS Proxy fails over by itself behind one name, and an IAM token is signed for one host.
fn one_host(host: String) -> Result<String, ConfigError> {
    if host.contains(',') {
        return Err(ConfigError::new(
            "PGHOST",
            format!(
                "names one host, not a list ({host:?}): use the cluster's or the proxy's endpoint, which fails over \
                 by itself"
            ),
        ));
    }
    Ok(host)
}

/// A TCP port, 1 to 65535, as libpq reads it (one port: see `one_host`).
fn port(value: String) -> Result<u16, ConfigError> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ if value.contains(',') => Err(ConfigError::new(
            "PGPORT",
            format!("names one port, not a list: {value:?}"),
        )),
        _ => Err(ConfigError::new(
            "PGPORT",
            format!("is not a port number (1 to 65535): {value:?}"),
        )),
    }
}

fn auth(var: &impl Lookup, extension: &SecretsExtension) -> Result<Auth, ConfigError> {
    match var("PGAUTH").as_deref() {
        None | Some("password") => match (var("PGSECRET_ID"), var("PGPASSWORD")) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "PGSECRET_ID",
                "is set together with PGPASSWORD: keep one",
            )),
            (Some(id), None) => Ok(Auth::Secret {
                id,
                extension: extension.clone(),
            }),
            (None, password) => Ok(Auth::Password(password.map(Secret::new))),
        },
        Some("iam") => {
            if var("PGPASSWORD").is_some() || var("PGSECRET_ID").is_some() {
                return Err(ConfigError::new(
                    "PGAUTH",
                    "iam signs its own token: unset PGPASSWORD and PGSECRET_ID",
                ));
            }
            Ok(Auth::Iam {
                region: var("AWS_REGION")
                    .or_else(|| var("AWS_DEFAULT_REGION"))
                    .ok_or_else(|| ConfigError::new("AWS_REGION", "is needed by PGAUTH=iam"))?,
                credentials: AwsCredentials::from_lookup(var)?,
            })
        }
        Some(other) => Err(ConfigError::new(
            "PGAUTH",
            format!("must be password or iam, got {other:?}"),
        )),
    }
}

/// libpq's rules where TLS guards a credential, to the letter.
fn ssl_mode(
    var: &impl Lookup,
    auth: &Auth,
    root_certs: Option<&RootCerts>,
) -> Result<SslMode, ConfigError> {
    const MODE: &str = "PGSSLMODE";
    const ROOT: &str = "PGSSLROOTCERT";
    let iam = matches!(auth, Auth::Iam { .. });
    let system = root_certs == Some(&RootCerts::System);
    let mode = match var(MODE) {
        Some(mode) => SslMode::parse(&mode).map_err(|problem| ConfigError::new(MODE, problem))?,
        // libpq 16: sslrootcert=system makes verify-full the default. An IAM token is a 15-minute credential:
        // only a server that proved its name may receive it.
        None if system || iam => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    // libpq 16 refuses the system store with anything weaker than verify-full: any public CA signs a certificate
    // for any name that someone controls, so only the name check makes that store mean something.
    if system && mode != SslMode::VerifyFull {
        return Err(ConfigError::new(
            MODE,
            format!(
                "{} may not be used with PGSSLROOTCERT=system: use verify-full",
                mode.as_str()
            ),
        ));
    }
    if iam && !matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        return Err(ConfigError::new(
            MODE,
            format!(
                "{} would hand PGAUTH=iam's token (a credential for 15 minutes) to a server that has not proved \
                 who it is: use verify-full with PGSSLROOTCERT (the RDS CA bundle)",
                mode.as_str()
            ),
        ));
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_certs.is_none() {
        return Err(ConfigError::new(
            ROOT,
            format!(
                "is needed by PGSSLMODE={}: the RDS CA bundle (global-bundle.pem, shipped in the zip with build.sh \
                 --include) or system",
                mode.as_str()
            ),
        ));
    }
    Ok(mode)
}

/// Database credentials from a secret: the JSON that RDS and Secrets Manager rotation keep (`username`,
/// `password`, and `host`, `port`, `dbname` where present), or a plain string that is the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSecret {
    pub username: Option<String>,
    pub password: Secret<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
}

impl DatabaseSecret {
    /// The error names the secret, never its text.
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, String> {
        if !text.trim_start().starts_with('{') {
            return Ok(DatabaseSecret {
                username: None,
                password: Secret::new(text.to_owned()),
                host: None,
                port: None,
                dbname: None,
            });
        }
        let malformed = || {
            format!(
                "secret {secret_id:?} starts like JSON but is not a JSON object with a password"
            )
        };
        let json: Value = serde_json::from_str(text).map_err(|_| malformed())?;
        let field = |name: &str| {
            json.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let port = match json.get("port") {
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(DatabaseSecret {
            username: field("username"),
            password: Secret::new(field("password").ok_or_else(malformed)?),
            host: field("host"),
            port,
            dbname: field("dbname"),
        })
    }
}
