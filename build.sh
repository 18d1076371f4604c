#!/usr/bin/env bash
# Builds the release `bootstrap` for AWS Lambda (custom runtime provided.al2023) and writes the zip that
# `aws lambda update-function-code --zip-file fileb://...` takes: `bootstrap` at the zip's root, executable.
#
#   ./build.sh [--arch arm64|x86_64] [--function NAME] [--include FILE]... [--output ZIP]
#
#   --arch       arm64 (default, Graviton) or x86_64
#   --function   the Lambda function to update (or FUNCTION_NAME): the script runs update-function-code with
#                the AWS CLI (which must then be on PATH); without a name it only prints the command
#   --include    another file for the zip's root (repeatable), e.g. the RDS CA bundle global-bundle.pem
#   --output     where to write the zip; default target/lambda/<arch>/deploy.zip (under CARGO_TARGET_DIR)
#
# Targets: aarch64-unknown-linux-gnu / x86_64-unknown-linux-gnu, checked to need no glibc newer than 2.34
# (Amazon Linux 2023). Normal native builds are not affected: the cross linker and C compiler are set in this
# script's environment only, not in a .cargo/config.
set -euo pipefail

caller="$PWD"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

die() {
  printf 'build.sh: %s\n' "$1" >&2
  exit 1
}

# Paths given on the command line are relative to where the script was started from.
absolute() {
  case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$caller" "$1" ;; esac
}

usage() {
  sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

arch=arm64
function_name="${FUNCTION_NAME:-}"
includes=()
output=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || die "--arch needs a value: arm64 or x86_64"; arch="$2"; shift 2 ;;
    --arch=*) arch="${1#*=}"; shift ;;
    --function | --function-name) [ $# -ge 2 ] || die "$1 needs a function name"; function_name="$2"; shift 2 ;;
    --function=* | --function-name=*) function_name="${1#*=}"; shift ;;
    --include) [ $# -ge 2 ] || die "--include needs a file"; includes+=("$(absolute "$2")"); shift 2 ;;
    --include=*) includes+=("$(absolute "${1#*=}")"); shift ;;
    --output) [ $# -ge 2 ] || die "--output needs a file name"; output="$(absolute "$2")"; shift 2 ;;
    --output=*) output="$(absolute "${1#*=}")"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

# The glibc of Amazon Linux 2023, which provided.al2023 runs on: no symbol may need a newer one (docs/decisions.md, D1).
max_glibc=2.34

case "$arch" in
  arm64 | aarch64)
    arch=arm64 gnu_arch=aarch64 debian_arch=arm64 elf_format=elf64-littleaarch64 ;;
  x86_64 | amd64)
    arch=x86_64 gnu_arch=x86_64 debian_arch=amd64 elf_format=elf64-x86-64 ;;
  *) die "unknown --arch '$arch': use arm64 or x86_64" ;;
esac
# glibc, not static musl (both start on provided.al2023; measured, README "Deploy"): the zip is 5 % smaller, and
# it is the same libc as the x86_64 build and as Amazon Linux itself; musl's one gain, about 0.7 ms of process
# start, is lost in a cold start whose cost is the first database connection. The price is the check below.
target="$gnu_arch-unknown-linux-gnu"
if [ "$(uname -m)" = "$gnu_arch" ]; then
  # A native build: the system's C compiler and binutils.
  cc="" objdump=objdump
  cross_packages=""
else
  # A cross build with Debian's (or Ubuntu's) cross toolchain, e.g. arm64 on an x86_64 machine.
  cc="$gnu_arch-linux-gnu-gcc" objdump="$gnu_arch-linux-gnu-objdump"
  cross_packages="gcc-${gnu_arch//_/-}-linux-gnu libc6-dev-$debian_arch-cross"
fi

# --- Everything this build needs, checked before the (long) compile. ------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
sysroot="$(rustc --print sysroot)"
if ! compgen -G "$sysroot/lib/rustlib/$target/lib/libstd-*.rlib" >/dev/null; then
  die "the Rust standard library for $target is not installed: rustup target add $target"
fi
if [ -n "$cc" ]; then
  command -v "$cc" >/dev/null || die "the linker $cc is missing: apt-get install $cross_packages"
  # gcc prints the bare name back when it cannot find the file.
  [ "$("$cc" -print-file-name=crt1.o)" != crt1.o ] ||
    die "the $arch C library to link with is missing: apt-get install libc6-dev-$debian_arch-cross"
  command -v "$objdump" >/dev/null ||
    die "$objdump (for the glibc check) is missing: apt-get install binutils-${gnu_arch//_/-}-linux-gnu"
else
  command -v "$objdump" >/dev/null || die "objdump (for the glibc check) is missing: apt-get install binutils"
fi
if command -v python3 >/dev/null; then
  zipper=python3
elif command -v zip >/dev/null; then
  zipper=zip
else
  die "python3 or zip is needed to write the zip: apt-get install python3 (or zip)"
fi
for file in ${includes[@]+"${includes[@]}"}; do
  if [ ! -f "$file" ] || [ ! -r "$file" ]; then die "--include $file: no such readable file"; fi
  case "$(basename "$file")" in
    bootstrap) die "--include $file: the name bootstrap is the function's own" ;;
  esac
done
if [ -n "$(printf '%s\n' ${includes[@]+"${includes[@]}"} | xargs -r -n1 basename | sort | uniq -d)" ]; then
  die "two --include files have the same name; the zip holds them all at its root"
fi
if [ -n "$function_name" ] && ! command -v aws >/dev/null; then
  die "a function name is given ($function_name) but the AWS CLI is not on PATH: install it
(https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html), or leave out --function and
FUNCTION_NAME to only build"
fi

# --- Build. ------------------------------------------------------------------------------------------------------
if [ -n "$cc" ]; then
  # ring (TLS) has C and assembly: the cross compiler builds it, and links the binary.
  target_env="${target//-/_}"
  export "CARGO_TARGET_${target_env^^}_LINKER=$cc"
  export "CC_$target_env=$cc"
  export "AR_$target_env=${cc%-gcc}-ar"
fi
cargo build --release --locked --bin bootstrap --target "$target"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
binary="$target_dir/$target/release/bootstrap"
[ -x "$binary" ] || die "cargo succeeded but $binary is not there"

# --- The binary must start on Amazon Linux 2023. --------------------------------------------------------------
headers="$("$objdump" -f "$binary")"
grep -q "file format $elf_format\$" <<<"$headers" || die "$binary is not an $arch binary ($elf_format):
$headers"
newest="$("$objdump" -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n1)"
if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$max_glibc" | sort -V | tail -n1)" != "$max_glibc" ]; then
  "$objdump" -T "$binary" | grep -wF "GLIBC_$newest" >&2 || true
  die "$binary needs GLIBC_$newest, newer than Amazon Linux 2023's $max_glibc: it would not start on
provided.al2023 (\"version 'GLIBC_$newest' not found\"). The symbols above need it. Build on a distribution
with an older glibc, or switch this script to the static $gnu_arch-unknown-linux-musl target (README, Deploy)."
fi

# --- The zip. --------------------------------------------------------------------------------------------------
zip_path="${output:-$target_dir/lambda/$arch/deploy.zip}"
mkdir -p "$(dirname "$zip_path")"
zip_path="$(cd "$(dirname "$zip_path")" && pwd)/$(basename "$zip_path")"
rm -f "$zip_path.tmp"
if [ "$zipper" = python3 ]; then
  # Fixed timestamps and modes: the same binary gives the same zip (and the same CodeSha256 on Lambda).
  # Lambda runs the code as another user than the files' owner: everything must be world-readable.
  python3 - "$zip_path.tmp" "$binary" ${includes[@]+"${includes[@]}"} <<'PY'
import os, stat, sys, zipfile

out, binary, *includes = sys.argv[1:]
with zipfile.ZipFile(out, "w") as archive:
    for path, name in [(binary, "bootstrap")] + [(p, os.path.basename(p)) for p in includes]:
        executable = name == "bootstrap" or os.stat(path).st_mode & stat.S_IXUSR
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.create_system = 3  # Unix: the mode below is what Lambda applies when it unpacks
        info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            archive.writestr(info, f.read(), compresslevel=9)
PY
else
  staging="$(mktemp -d)"
  trap 'rm -rf "$staging"' EXIT
  install -m 0755 "$binary" "$staging/bootstrap"
  for file in ${includes[@]+"${includes[@]}"}; do
    if [ -x "$file" ]; then mode=0755; else mode=0644; fi
    install -m "$mode" "$file" "$staging/$(basename "$file")"
  done
  (cd "$staging" && TZ=UTC touch -t 198001010000 ./* && zip -q -X -9 "$zip_path.tmp" ./*)
fi
mv -f "$zip_path.tmp" "$zip_path"

# --architectures too: an arm64 zip on a function left at x86_64 would fail every start with an exec format error.
command=(aws lambda update-function-code --function-name "${function_name:-<FUNCTION_NAME>}"
  --zip-file "fileb://$zip_path" --architectures "$arch")
echo
echo "zip:        $zip_path"
echo "zip size:   $(stat -c %s "$zip_path") bytes$( [ ${#includes[@]} -eq 0 ] || printf ', with %s' "${includes[*]##*/}")"
echo "bootstrap:  $(stat -c %s "$binary") bytes, $target, newest glibc symbol ${newest:-none} (at most $max_glibc)"
echo "update:     ${command[*]}"
echo "            (function settings: runtime provided.al2023, architecture $arch; the handler name is not used)"

if [ -n "$function_name" ]; then
  echo
  "${command[@]}"
fi
