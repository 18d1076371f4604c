//! Certificates made at test time with the `openssl` command: a CA, a server certificate it signs for
//! `localhost` only, and an unrelated CA, for the TLS tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::postgres::{self, Options, register_cleanup, temp_dir};

pub struct TestCertificates {
    pub dir: PathBuf,
}

impl TestCertificates {
    /// Files in `dir`: `ca.crt`, `other-ca.crt`, `server.crt`, `server.key` (for `localhost`).
    pub fn make() -> Result<Self, String> {
        let dir = temp_dir("certs")?;
        register_cleanup(dir.clone());
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
            let subject = format!("/CN=Test {ca}");
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend([
                "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subject,
            ]);
            args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(&dir, &args)?;
        }
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&dir, &args)?;
        fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        )?;
        Ok(TestCertificates { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        fs::read(self.path(name)).map_err(|e| format!("{name}: {e}"))
    }
    /// Cluster options as RDS with `rds.force_ssl = 1` is reached: `ssl = on` with the certificate for `localhost`,
    /// each of `users` taken over TLS only (`hostssl`) with its auth method, and the tests' own superuser over plain
    /// TCP.
    pub fn tls_only(&self, users: &[(&str, &str)]) -> Result<Options, String> {
        let mut hba = format!(
            "local all all trust\nhost all {} 127.0.0.1/32 scram-sha-256\n",
            postgres::SUPERUSER
        );
        for (user, method) in users {
            hba.push_str(&format!("hostssl all {user} 127.0.0.1/32 {method}\n"));
        }
        Ok(Options {
            config: vec![
                "ssl = on".into(),
                "ssl_cert_file = 'server.crt'".into(),
                "ssl_key_file = 'server.key'".into(),
            ],
            hba: Some(hba),
            files: vec![
                ("server.crt".into(), self.read("server.crt")?),
                ("server.key".into(), self.read("server.key")?),
            ],
        })
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl (install it: apt-get install openssl): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
