#!/usr/bin/env bash
# The whole check: install the test tools when missing (Debian/Ubuntu), then formatting, lints
# and every test. Used by CI (.ci/run) and by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian package that provides each tool the integration tests run.
declare -A PACKAGE_OF=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [curl]=curl
)

missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "error: missing test tools (${missing[*]}) and no root or sudo to install them" >&2
    echo "  hint: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing test tools (${missing[*]}) and no apt-get; install them by hand" >&2
    exit 1
  fi
  echo "==> installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Every step runs even when an earlier one fails, so one CI run shows every problem.
failed=()
step() {
  echo "==> $*"
  if ! "$@"; then
    failed+=("$*")
  fi
}

# rustfmt and clippy come with the toolchain here; where a minimal toolchain lacks them, try to add
# them, and say so loudly rather than fail the tests for a missing linter.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component" >/dev/null 2>&1 || echo "warning: $component is not installed and cannot be added; skipping it" >&2
  fi
done
cargo fmt --version >/dev/null 2>&1 && step cargo fmt --all -- --check
cargo clippy --version >/dev/null 2>&1 && step cargo clippy --all-targets -- -D warnings
step cargo test --no-fail-fast

if ((${#failed[@]})); then
  echo "FAILED:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "all checks passed"
