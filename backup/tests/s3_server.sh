#!/usr/bin/env bash
# Prints the path of an s3s-fs binary (an S3-compatible server that serves a
# directory, from crates.io), installing it with cargo on first use, so the
# S3 test runs on a fresh machine that has only a Rust toolchain.
#
#   backup/tests/s3_server.sh path      print the binary's path (install if missing)
#
# Looks in order at: $HSM_S3S_FS (a binary), s3s-fs on PATH, the install
# root below, /tmp/s3s-fs-install (where shared/peers puts it). Installs
# s3s-fs $VERSION (the newest that builds with rustc 1.95; 0.17 needs 1.96)
# into ${XDG_CACHE_HOME:-~/.cache}/hsm-cluster/s3s-fs-$VERSION, building in a
# temporary target directory that is removed afterwards. Concurrent callers
# wait on a lock instead of building twice.
set -euo pipefail

VERSION=0.14.1
ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/hsm-cluster/s3s-fs-$VERSION"

log() { printf 's3_server.sh: %s\n' "$*" >&2; }

find_binary() {
  if [ -n "${HSM_S3S_FS:-}" ] && [ -x "$HSM_S3S_FS" ]; then echo "$HSM_S3S_FS"; return 0; fi
  if command -v s3s-fs >/dev/null 2>&1; then command -v s3s-fs; return 0; fi
  local b
  for b in "$ROOT/bin/s3s-fs" /tmp/s3s-fs-install/bin/s3s-fs; do
    if [ -x "$b" ]; then echo "$b"; return 0; fi
  done
  return 1
}

install() {
  command -v cargo >/dev/null 2>&1 || { log "cargo not found: cannot install s3s-fs"; return 1; }
  mkdir -p "$ROOT"
  local target
  target=$(mktemp -d /tmp/s3s-fs-build.XXXXXX)
  log "installing s3s-fs $VERSION from crates.io into $ROOT (once; takes a few minutes)"
  if ! CARGO_TARGET_DIR="$target" cargo install --quiet --locked s3s-fs --version "$VERSION" \
      --features binary --root "$ROOT" >&2; then
    rm -rf "$target"
    log "cargo install s3s-fs $VERSION failed"
    return 1
  fi
  rm -rf "$target"
}

case "${1:-}" in
  path)
    if find_binary; then exit 0; fi
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$ROOT.lock"
    flock 9
    # Another caller may have installed it while this one waited.
    if find_binary; then exit 0; fi
    install
    find_binary
    ;;
  *)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
