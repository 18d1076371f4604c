//! The connection's configuration, read once from the environment (libpq's variables, D6; D9's credentials).

use std::time::{Duration, SystemTime};

use super::tls::{RootCerts, SslMode};
use crate::rds_iam::{self, AwsCredentials};
use crate::secrets::{DatabaseSecret, SecretsExtension};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the function proves who it is to the database (D9).
#[derive(Debug, Clone)]
pub enum Auth {
    /// `PGPASSWORD`, or none (trust, local use).
    Password,
    /// `PGSECRET_ID`: read through the Parameters and Secrets extension on connect; re-read once when the server
    /// refuses it (a rotation).
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

#[derive(Clone)]
pub struct Settings {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    /// The login name (`USER`), libpq's last resort for the user name.
    login: Option<String>,
    dbname: Option<String>,
    password: Option<String>,
    application_name: Option<String>,
    pub auth: Auth,
    pub ssl_mode: SslMode,
    pub root_certs: Option<RootCerts>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("target", &self.target(None))
            .field("auth", &self.auth)
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
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
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let port = var("PGPORT")
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("PGPORT is not a port number: {p:?}"))
            })
            .transpose()?;
        let auth = match var("PGAUTH").as_deref() {
            None | Some("password") => match var("PGSECRET_ID") {
                Some(_) if var("PGPASSWORD").is_some() => {
                    return Err(
                        "both PGPASSWORD and PGSECRET_ID are set: keep one (D9: the secret)".into(),
                    );
                }
                Some(id) => Auth::Secret {
                    id,
                    extension: SecretsExtension::from_lookup(&var)?,
                },
                None => Auth::Password,
            },
            Some("iam") => {
                if var("PGPASSWORD").is_some() || var("PGSECRET_ID").is_some() {
                    return Err(
                        "PGAUTH=iam signs its own token: unset PGPASSWORD and PGSECRET_ID".into(),
                    );
                }
                Auth::Iam {
                    region: var("AWS_REGION")
                        .or_else(|| var("AWS_DEFAULT_REGION"))
                        .ok_or("PGAUTH=iam needs AWS_REGION")?,
                    credentials: AwsCredentials::from_lookup(&var)?,
                }
            }
            Some(other) => {
                return Err(format!("PGAUTH must be password or iam, got {other:?}"));
            }
        };
        let iam = matches!(auth, Auth::Iam { .. });
        let ssl_mode = match var("PGSSLMODE") {
            Some(mode) => SslMode::parse(&mode)?,
            // RDS checks IAM tokens only over TLS; verify-full keeps the token from going to an impostor.
            None if iam => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if iam && matches!(ssl_mode, SslMode::Disable | SslMode::Prefer) {
            return Err(format!(
                "PGAUTH=iam needs TLS: PGSSLMODE={} would send the token in the clear; use verify-full",
                ssl_mode.as_str()
            ));
        }
        let root_certs = var("PGSSLROOTCERT")
            .map(|value| RootCerts::parse(&value, var("LAMBDA_TASK_ROOT").as_deref()));
        if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_certs.is_none() {
            return Err(format!(
                "PGSSLMODE={} needs PGSSLROOTCERT: the RDS CA bundle (global-bundle.pem, shipped in the zip with \
                 build.sh --include) or system",
                ssl_mode.as_str()
            ));
        }
        let settings = Settings {
            host: var("PGHOST"),
            port,
            user: var("PGUSER"),
            login: var("USER"),
            dbname: var("PGDATABASE"),
            password: var("PGPASSWORD"),
            application_name: var("PGAPPNAME"),
            auth,
            ssl_mode,
            root_certs,
            connect_timeout: seconds(&var, "PGCONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, 2)?,
            statement_timeout: seconds(
                &var,
                "STATEMENT_TIMEOUT_SECONDS",
                DEFAULT_STATEMENT_TIMEOUT,
                1,
            )?,
        };
        // Without a secret that may carry it, the user must be known now.
        if !matches!(settings.auth, Auth::Secret { .. }) {
            settings.endpoint(None)?;
        }
        Ok(settings)
    }

    /// The variables win; a secret's fields fill what they leave out; then libpq's defaults.
    pub fn endpoint(&self, secret: Option<&DatabaseSecret>) -> Result<Endpoint, String> {
        let user = self
            .user
            .clone()
            .or_else(|| secret.and_then(|s| s.username.clone()))
            .or_else(|| self.login.clone())
            .ok_or("PGUSER is not set")?;
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
    ) -> Result<postgres::Config, String> {
        let endpoint = self.endpoint(secret)?;
        let mut config = postgres::Config::new();
        config
            .host(&endpoint.host)
            .port(endpoint.port)
            .user(&endpoint.user)
            .dbname(&endpoint.dbname)
            .ssl_mode(self.ssl_mode.for_postgres())
            .connect_timeout(self.connect_timeout)
            // Sent data unacknowledged this long means the path is gone: fail, so the request can reconnect.
            .tcp_user_timeout(self.statement_timeout)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(name) = &self.application_name {
            config.application_name(name);
        }
        match &self.auth {
            Auth::Password => {
                if let Some(password) = &self.password {
                    config.password(password);
                }
            }
            Auth::Secret { .. } => {
                if let Some(secret) = secret {
                    config.password(&secret.password);
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

/// libpq's reading of `PGCONNECT_TIMEOUT`, used for both timeouts: whole seconds, at least `min` (libpq's is 2);
/// 0 would mean forever, which D6 rules out, so it takes the default.
fn seconds(
    var: impl Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
    min: u64,
) -> Result<Duration, String> {
    match var(name) {
        None => Ok(default),
        Some(value) => match value.trim().parse::<u64>() {
            Ok(0) => Ok(default),
            Ok(s) => Ok(Duration::from_secs(s.max(min))),
            Err(_) => Err(format!("{name} is not a number of seconds: {value:?}")),
        },
    }
}
