//! `./build.sh`'s deploy.zip, checked the way Lambda takes it (provided.al2023, arm64 by default): built here by the script itself,
//! unpacked with the modes the zip records, `bootstrap` at its root and executable, an ELF for the right machine
//! that needs no glibc newer than Amazon Linux 2023's 2.34 and no library provided.al2023 lacks; then that very
//! file run through the Runtime API against PostgreSQL 17 — the arm64 one under `qemu-aarch64`.
//!
//! Opt-in (`cargo test -- --ignored`, which `.ci/run` runs): two release builds take minutes, and the arm64 one
//! needs a cross toolchain and qemu that a plain `cargo test` must not require. Asked for and missing, they fail
//! the test, which says what to install; they never skip it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use devtools::postgres::{self, TestDatabase};
use devtools::runtime_api::{Function, RuntimeApi};
use devtools::{LOCAL_STATE_SECRET, SHAPES, fixture};

/// Generous: under qemu the first request also pays for an emulated SCRAM handshake.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Amazon Linux 2023's glibc.
const MAX_GLIBC: (u32, u32) = (2, 34);

const ARM64_TOOLS: &str = "The arm64 build and its run need (as root on Debian; .ci/run does this):
  apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user python3
  rustup target add aarch64-unknown-linux-gnu";

struct Arch {
    name: &'static str,
    elf_machine: u16,
    interpreter: &'static str,
    qemu: &'static str,
    /// Where Debian's cross packages put the target's libraries, for qemu to load the dynamic ones from.
    sysroot: &'static str,
}

const ARM64: Arch = Arch {
    name: "arm64",
    elf_machine: 183, // EM_AARCH64
    interpreter: "/lib/ld-linux-aarch64.so.1",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
};

const X86_64: Arch = Arch {
    name: "x86_64",
    elf_machine: 62, // EM_X86_64
    interpreter: "/lib64/ld-linux-x86-64.so.2",
    qemu: "qemu-x86_64",
    sysroot: "/usr/x86_64-linux-gnu",
};

impl Arch {
    /// How to start this architecture's binaries here: directly on the same machine, else through qemu-user.
    fn runner(&self) -> Vec<&'static str> {
        let native = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            other => other,
        };
        if native == self.name {
            Vec::new()
        } else {
            vec![self.qemu, "-L", self.sysroot]
        }
    }
}

#[test]
#[ignore = "opt-in: release cross build for arm64 and qemu-aarch64 (cargo test -- --ignored; .ci/run installs them)"]
fn arm64_zip_runs_under_qemu_against_postgres() {
    let runner = ARM64.runner();
    if let Some(program) = runner.first() {
        let found = Command::new(program).arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{program} is not available to run the arm64 bootstrap.\n{ARM64_TOOLS}"
        );
    }
    let zip = build(&ARM64, &[]);
    let unpacked = Unpacked::new(&zip);
    unpacked.check(&ARM64);
    run_contract(&ARM64, &unpacked.bootstrap());

    // --include puts a file beside bootstrap (the RDS CA bundle, say), world-readable: Lambda runs the code as
    // another user than the files' owner. Written elsewhere so the deployable zip keeps only bootstrap.
    let dir = postgres::temp_dir("deploy-zip-include").unwrap();
    let pem = dir.join("global-bundle.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
    std::fs::set_permissions(&pem, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let with_bundle = dir.join("with-bundle.zip");
    let built = build(
        &ARM64,
        &[
            "--include",
            pem.to_str().unwrap(),
            "--output",
            with_bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(built, with_bundle);
    let unpacked = Unpacked::new(&with_bundle);
    let names: Vec<(&str, u32)> = unpacked
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.mode))
        .collect();
    assert_eq!(
        names,
        [("bootstrap", 0o100755), ("global-bundle.pem", 0o100644)]
    );
    assert_eq!(
        std::fs::read(unpacked.dir.join("global-bundle.pem")).unwrap(),
        std::fs::read(&pem).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "opt-in: a release build and the zip (cargo test -- --ignored; .ci/run runs it)"]
fn x86_64_zip_runs_against_postgres() {
    let zip = build(&X86_64, &[]);
    let unpacked = Unpacked::new(&zip);
    unpacked.check(&X86_64);
    run_contract(&X86_64, &unpacked.bootstrap());
}

/// Runs `./build.sh --arch <arch> <extra>` and returns the zip it reports. One build at a time: both would
/// fight over two cores and cargo's lock anyway.
fn build(arch: &Arch, extra: &[&str]) -> PathBuf {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let script = postgres::workspace_root().join("build.sh");
    let output = Command::new(&script)
        .args(["--arch", arch.name])
        .args(extra)
        .env_remove("FUNCTION_NAME") // never deploy from a test
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "build.sh --arch {} {extra:?} failed ({}):\n{stderr}\n{stdout}\n{}",
        arch.name,
        output.status,
        if arch.name == "arm64" {
            ARM64_TOOLS
        } else {
            ""
        }
    );
    let zip = stdout
        .lines()
        .find_map(|l| l.strip_prefix("zip:"))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("build.sh printed no zip path:\n{stdout}"));
    assert!(zip.is_absolute() && zip.is_file(), "{}", zip.display());
    let update = format!(
        "aws lambda update-function-code --function-name <FUNCTION_NAME> --zip-file fileb://{} --architectures {}",
        zip.display(),
        arch.name
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start_matches("update:").trim() == update),
        "the update command, ready to paste:\n{stdout}"
    );
    zip
}

struct Entry {
    name: String,
    /// The Unix mode the zip records for the entry (what Lambda applies when it unpacks).
    mode: u32,
}

/// A zip unpacked into a temporary directory, each file given the mode the zip records (Lambda does the same;
/// Python's `extractall` alone would drop it).
struct Unpacked {
    dir: PathBuf,
    entries: Vec<Entry>,
}

impl Unpacked {
    fn new(zip: &Path) -> Unpacked {
        let dir = postgres::temp_dir("deploy-zip").unwrap();
        let script = r#"
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for info in archive.infolist():
        if info.create_system != 3:
            sys.exit(f"{info.filename}: not made on Unix, so it carries no mode")
        path = archive.extract(info, sys.argv[2])
        os.chmod(path, (info.external_attr >> 16) & 0o7777)
        print(f"{info.external_attr >> 16:o} {info.filename}")
"#;
        let output = Command::new("python3")
            .args(["-c", script])
            .arg(zip)
            .arg(&dir)
            .output()
            .expect("python3 unpacks the zip");
        assert!(
            output.status.success(),
            "unpacking {}: {}",
            zip.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let entries = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let (mode, name) = l.split_once(' ').unwrap();
                Entry {
                    name: name.to_owned(),
                    mode: u32::from_str_radix(mode, 8).unwrap(),
                }
            })
            .collect();
        Unpacked { dir, entries }
    }

    fn bootstrap(&self) -> PathBuf {
        self.dir.join("bootstrap")
    }

    /// The zip holds `bootstrap` alone, at its root, a regular executable file readable by anyone, and an ELF
    /// that starts on provided.al2023 for this architecture.
    fn check(&self, arch: &Arch) {
        let names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bootstrap"], "{}: bootstrap at the root", arch.name);
        assert_eq!(self.entries[0].mode, 0o100755, "a regular file, rwxr-xr-x");
        let metadata = std::fs::metadata(self.bootstrap()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777,
            0o755
        );

        let elf = Elf::parse(std::fs::read(self.bootstrap()).unwrap());
        assert_eq!(
            elf.machine, arch.elf_machine,
            "{}: ELF machine of bootstrap",
            arch.name
        );
        match &elf.interpreter {
            None => assert!(elf.needed.is_empty(), "static, so no libraries"),
            Some(interpreter) => {
                assert_eq!(interpreter, arch.interpreter, "{}", arch.name);
                let glibc = elf
                    .newest_glibc()
                    .expect("a glibc build names its versions");
                assert!(
                    glibc <= MAX_GLIBC,
                    "{}: bootstrap needs GLIBC_{}.{}, newer than Amazon Linux 2023's {}.{}: {:?}",
                    arch.name,
                    glibc.0,
                    glibc.1,
                    MAX_GLIBC.0,
                    MAX_GLIBC.1,
                    elf.versions
                );
                // glibc's own libraries and libgcc: all in provided.al2023. Anything else would be missing there.
                for library in &elf.needed {
                    assert!(
                        [
                            "libc.so.6",
                            "libm.so.6",
                            "libgcc_s.so.1",
                            "libpthread.so.0",
                            "libdl.so.2",
                            "librt.so.1"
                        ]
                        .contains(&library.as_str()),
                        "{}: bootstrap needs {library}, which provided.al2023 does not have",
                        arch.name
                    );
                }
            }
        }
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The unpacked bootstrap through the Runtime API: success, repeat (same id) and a forged state for each event
/// shape; three rows stored, with the ids the function answered.
fn run_contract(arch: &Arch, bootstrap: &Path) {
    let db = postgres::shared().unwrap().create_database().unwrap();
    let api = RuntimeApi::start().unwrap();
    let mut function =
        Function::start_with_runner(&arch.runner(), bootstrap, &api, &env_for(&db)).unwrap();
    let init = api
        .wait_first_next(TIMEOUT)
        .unwrap_or_else(|| panic!("{}: no /next; output: {:?}", arch.name, function.output()));
    eprintln!(
        "{}: init {:.1} ms (runner {:?})",
        arch.name,
        init.duration_since(function.started).as_secs_f64() * 1000.0,
        arch.runner()
    );
    let mut saved = Vec::new();
    for shape in SHAPES {
        let invoke = |name: &str| {
            let invocation = api.invoke(&fixture(shape, name).unwrap(), TIMEOUT).unwrap();
            let body = invocation.body().unwrap();
            (invocation.status(), body, invocation.request_id)
        };
        let (status, body, request_id) = invoke("success");
        assert_eq!(status, Some(200), "{} {shape}/success: {body}", arch.name);
        assert_eq!(body["ok"], true);
        assert_eq!(body["message"], "Saved");
        let id = body["id"].as_i64().unwrap();

        let (status, repeat, _) = invoke("repeat");
        assert_eq!(status, Some(200), "{} {shape}/repeat: {repeat}", arch.name);
        assert_eq!(repeat["id"].as_i64(), Some(id), "{shape}: the same id");

        let (status, forged, _) = invoke("forged-state");
        assert_eq!(status, Some(403), "{} {shape}/forged-state", arch.name);
        assert_eq!(
            forged,
            serde_json::json!({"ok": false, "message": "Invalid state signature"})
        );
        saved.push((id, request_id));
    }
    let rows = db.rows().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        saved.iter().map(|s| s.0).collect::<Vec<_>>(),
        "{}: one row per shape, the ids answered",
        arch.name
    );
    assert!(function.exited().is_none(), "the function keeps serving");
    // Its log line went to stdout, as Lambda collects it.
    let line = function.request_log(&saved[0].1);
    assert!(
        line.as_ref().is_some_and(|l| l["status"] == 200),
        "{}: log line for the first success: {line:?}",
        arch.name
    );
}

fn env_for(db: &TestDatabase) -> Vec<(String, String)> {
    let mut env = db.env();
    env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    env
}

/// What the checks need from an ELF64 little-endian file, read with the standard library: the machine, the
/// program interpreter, the needed libraries and the symbol versions it requires (`.gnu.version_r`, what
/// `objdump -T` shows in parentheses and the dynamic loader checks at start).
struct Elf {
    machine: u16,
    interpreter: Option<String>,
    needed: Vec<String>,
    versions: Vec<String>,
}

impl Elf {
    fn parse(bytes: Vec<u8>) -> Elf {
        assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
        assert_eq!(bytes[4], 2, "ELF64");
        assert_eq!(bytes[5], 1, "little-endian");
        let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| {
            usize::try_from(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())).unwrap()
        };
        let c_str = |at: usize| {
            let end = at + bytes[at..].iter().position(|&b| b == 0).unwrap();
            String::from_utf8(bytes[at..end].to_vec()).unwrap()
        };

        let machine = u16_at(18);
        let mut interpreter = None;
        let (phoff, phentsize, phnum) = (u64_at(0x20), usize::from(u16_at(0x36)), u16_at(0x38));
        for i in 0..usize::from(phnum) {
            let header = phoff + i * phentsize;
            if u32_at(header) == 3 {
                // PT_INTERP
                interpreter = Some(c_str(u64_at(header + 8)));
            }
        }

        struct Section {
            kind: u32,
            offset: usize,
            size: usize,
            link: usize,
            info: usize,
        }
        let (shoff, shentsize, shnum) = (u64_at(0x28), usize::from(u16_at(0x3a)), u16_at(0x3c));
        let sections: Vec<Section> = (0..usize::from(shnum))
            .map(|i| {
                let header = shoff + i * shentsize;
                Section {
                    kind: u32_at(header + 4),
                    offset: u64_at(header + 24),
                    size: u64_at(header + 32),
                    link: u32_at(header + 40) as usize,
                    info: u32_at(header + 44) as usize,
                }
            })
            .collect();

        let mut needed = Vec::new();
        let mut versions = Vec::new();
        for section in &sections {
            match section.kind {
                // SHT_DYNAMIC: (tag, value) pairs; DT_NEEDED = 1 names a library in the linked string table.
                6 => {
                    let strings = sections[section.link].offset;
                    for entry in (section.offset..section.offset + section.size).step_by(16) {
                        if u64_at(entry) == 1 {
                            needed.push(c_str(strings + u64_at(entry + 8)));
                        }
                    }
                }
                // SHT_GNU_verneed: per library a Verneed, each with a chain of Vernaux naming a version.
                0x6fff_fffe => {
                    let strings = sections[section.link].offset;
                    let mut need = section.offset;
                    for _ in 0..section.info {
                        let mut aux = need + u32_at(need + 8) as usize;
                        for _ in 0..u16_at(need + 2) {
                            versions.push(c_str(strings + u32_at(aux + 8) as usize));
                            aux += u32_at(aux + 12) as usize;
                        }
                        need += u32_at(need + 12) as usize;
                    }
                }
                _ => {}
            }
        }
        Elf {
            machine,
            interpreter,
            needed,
            versions,
        }
    }

    /// The newest `GLIBC_x.y` required, if any.
    fn newest_glibc(&self) -> Option<(u32, u32)> {
        self.versions
            .iter()
            .filter_map(|v| {
                let (major, minor) = v.strip_prefix("GLIBC_")?.split_once('.')?;
                let minor = minor.split('.').next()?;
                Some((major.parse().ok()?, minor.parse().ok()?))
            })
            .max()
    }
}

#[test]
fn the_elf_reader_reads_this_test_binary() {
    // The test binary itself is a dynamic glibc executable for this machine: the reader must find what the
    // checks above rely on, or they would pass vacuously.
    let elf = Elf::parse(std::fs::read(std::env::current_exe().unwrap()).unwrap());
    let expected = match std::env::consts::ARCH {
        "x86_64" => X86_64.elf_machine,
        "aarch64" => ARM64.elf_machine,
        other => panic!("no ELF machine number known for {other}"),
    };
    assert_eq!(elf.machine, expected);
    assert!(elf.interpreter.is_some());
    assert!(
        elf.needed.iter().any(|l| l == "libc.so.6"),
        "{:?}",
        elf.needed
    );
    assert!(elf.newest_glibc() >= Some((2, 2)), "{:?}", elf.versions);
}
