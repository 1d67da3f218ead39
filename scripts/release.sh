#!/usr/bin/env bash
# Release build: fully static violet binaries for linux/amd64 and linux/arm64 (musl), each in
# dist/violet_<version>_linux_<arch>.tar.gz with its man pages, shell completions, LICENSE and
# README, plus dist/SHA256SUMS. Two runs of one commit give the same bytes.
#
#   scripts/release.sh                      # both architectures
#   scripts/release.sh --arch amd64         # one (repeatable)
#   scripts/release.sh --mimalloc           # mimalloc instead of musl's malloc (for the benchmark only)
#   DIST=dir CARGO_TARGET_DIR=dir scripts/release.sh   # elsewhere (scripts/release-check.sh --reproducible)
#
# Then scripts/release-check.sh checks the result as a user would. Neither runs in per-commit CI.
#
# Toolchain (docs/release.md says why): rustup's musl targets, and zig as the C cross compiler and
# linker through cargo-zigbuild, both pinned and installed from PyPI into target/release-tools/venv:
# one toolchain for both architectures, with musl headers for aws-lc and zstd (Debian's cross gcc
# would compile them against glibc's headers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

ZIGLANG_VERSION=0.15.2
CARGO_ZIGBUILD_VERSION=0.24.1

ARCHES=() FEATURES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCHES+=("$2"); shift 2 ;;
    --mimalloc) FEATURES=(--features mimalloc); shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; echo "  hint: scripts/release.sh [--arch amd64|arm64]... [--mimalloc]" >&2; exit 2 ;;
  esac
done
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=(amd64 arm64)

triple_of() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    *) echo "error: unknown architecture $1" >&2; echo "  hint: --arch amd64 or --arch arm64" >&2; exit 2 ;;
  esac
}
for arch in "${ARCHES[@]}"; do triple_of "$arch" >/dev/null; done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DIST=${DIST:-$ROOT/dist}
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR=$ROOT/$CARGO_TARGET_DIR ;; esac
case "$DIST" in /*) ;; *) DIST=$ROOT/$DIST ;; esac

# --- tools -------------------------------------------------------------------------------------
for arch in "${ARCHES[@]}"; do
  triple=$(triple_of "$arch")
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
done
VENV=$ROOT/target/release-tools/venv
if ! "$VENV/bin/python" -m ziglang version 2>/dev/null | grep -qx "$ZIGLANG_VERSION" ||
   ! "$VENV/bin/cargo-zigbuild" --version 2>/dev/null | grep -q " $CARGO_ZIGBUILD_VERSION\$"; then
  echo "==> installing ziglang $ZIGLANG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION (PyPI) into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
fi
# cargo-zigbuild runs `python -m ziglang` when no `zig` is on PATH: the venv's python first.
export PATH=$VENV/bin:$PATH

# --- reproducibility ---------------------------------------------------------------------------
# The build date is the commit's time (build.rs), never the clock; the tarballs' mtimes too.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
# Paths end up in the binary (panic locations, C __FILE__): name them independently of where the
# checkout, the target dir and the cargo home are. The last matching prefix wins, so the target dir
# (possibly inside the checkout) comes after the checkout.
remap="--remap-path-prefix=$ROOT=/violet --remap-path-prefix=$CARGO_TARGET_DIR=/target --remap-path-prefix=$CARGO_HOME=/cargo"
cmap="-ffile-prefix-map=$ROOT=/violet -ffile-prefix-map=$CARGO_TARGET_DIR=/target -ffile-prefix-map=$CARGO_HOME=/cargo"
if git diff --quiet HEAD 2>/dev/null; then :; else
  echo "warning: the work tree has uncommitted changes; the binaries say commit $(git rev-parse --short HEAD) but are not it" >&2
fi

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$VERSION" ] || { echo "error: no version in Cargo.toml" >&2; exit 1; }

# --- build -------------------------------------------------------------------------------------
for arch in "${ARCHES[@]}"; do
  triple=$(triple_of "$arch")
  env_triple=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  echo "==> building $triple" >&2
  # Per-target flags: build scripts and proc macros (host code) keep the ordinary flags.
  env "CARGO_TARGET_${env_triple}_RUSTFLAGS=$remap" "CFLAGS_${triple//-/_}=$cmap" \
    cargo zigbuild --locked --quiet --profile dist --target "$triple" --bin violet "${FEATURES[@]}"
done

# --- package -----------------------------------------------------------------------------------
mkdir -p "$DIST"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/violet-release.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# Man pages and completions are text from the clap definitions, the same for every architecture:
# made once by a binary this machine runs (amd64 natively, else arm64 under qemu).
first=${ARCHES[0]}
GEN=$CARGO_TARGET_DIR/$(triple_of "$first")/dist/violet
native=$(case "$(uname -m)" in x86_64) echo amd64 ;; aarch64|arm64) echo arm64 ;; esac)
run_gen() {
  if [ "$first" = "$native" ]; then "$GEN" "$@"; else "qemu-$(uname -m | sed 's/x86_64/aarch64/;t;s/.*/x86_64/')-static" "$GEN" "$@"; fi
}
mkdir -p "$STAGE/common/man/man1" "$STAGE/common/completions"
run_gen __man "$STAGE/common/man/man1"
run_gen completion bash > "$STAGE/common/completions/violet.bash"
run_gen completion zsh > "$STAGE/common/completions/_violet"
run_gen completion fish > "$STAGE/common/completions/violet.fish"
cp LICENSE README.md "$STAGE/common/"

for arch in "${ARCHES[@]}"; do
  triple=$(triple_of "$arch")
  name=violet_${VERSION}_linux_${arch}
  dir=$STAGE/$name
  mkdir -p "$dir"
  cp -R "$STAGE/common/." "$dir/"
  cp "$CARGO_TARGET_DIR/$triple/dist/violet" "$dir/violet"
  # Modes, owner, order and times fixed, so the archive depends on nothing but the content.
  find "$dir" -type d -exec chmod 0755 {} +
  find "$dir" -type f -exec chmod 0644 {} +
  chmod 0755 "$dir/violet"
  find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  tar --format=gnu --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$STAGE" -cf - "$name" | gzip -9 -n > "$DIST/$name.tar.gz.partial"
  mv "$DIST/$name.tar.gz.partial" "$DIST/$name.tar.gz"
  echo "==> $DIST/$name.tar.gz" >&2
done

# Every tarball in dist/ of this version (an --arch run keeps the other architecture's line).
(cd "$DIST" && sha256sum violet_"${VERSION}"_linux_*.tar.gz > SHA256SUMS.partial && mv SHA256SUMS.partial SHA256SUMS)
cat "$DIST/SHA256SUMS"
