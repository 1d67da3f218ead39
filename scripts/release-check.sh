#!/usr/bin/env bash
# Checks the release in dist/ as a user would, on this machine (Debian, x86_64):
#   * SHA256SUMS matches the tarballs; each tarball holds violet, man pages, completions, LICENSE, README;
#   * the amd64 binary is static (file, ldd), prints `Version: v<version>` and its target, shows and
#     verifies the committed sample package, pushes it to a local docker-registry, and a re-push
#     uploads nothing; the registry serves the digests `show` reported;
#   * the arm64 binary runs version, show and verify under qemu-aarch64 and reports the same
#     digests as the amd64 one.
#   scripts/release-check.sh                 # check dist/ (run scripts/release.sh first)
#   scripts/release-check.sh --reproducible  # also: a second build from scratch in target/repro
#                                            # must give the same SHA256SUMS (slow: builds everything again)
# Not part of per-commit CI (builds take long on 2 cores); a release runs it (docs/release.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
. scripts/lib/registry.sh

REPRO=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reproducible) REPRO=1; shift ;;
    *) echo "error: unknown argument $1" >&2; echo "  hint: scripts/release-check.sh [--reproducible]" >&2; exit 2 ;;
  esac
done

need_tools docker-registry:docker-registry curl:curl file:file qemu-aarch64-static:qemu-user-static python3:python3
DIST=${DIST:-$ROOT/dist}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
SAMPLE=$ROOT/testdata/tiny-operator.stable.ALL.v0.1.0.tgz
[ -f "$DIST/SHA256SUMS" ] || { echo "error: no $DIST/SHA256SUMS" >&2; echo "  hint: run scripts/release.sh first" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/violet-release-check.XXXXXX")
trap 'registry_stop "$WORK/reg"; rm -rf "$WORK"' EXIT

failures=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*"; failures=$((failures + 1)); }
check() { # description command... : ok when the command succeeds
  local what=$1; shift
  if "$@" > "$WORK/check.out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/      /' "$WORK/check.out"; fi
}

check "SHA256SUMS matches the tarballs" bash -c "cd '$DIST' && sha256sum -c --strict SHA256SUMS"

# Each tarball unpacks into violet_<version>_linux_<arch>/ with every file a user needs.
for arch in amd64 arm64; do
  name=violet_${VERSION}_linux_${arch}
  tarball=$DIST/$name.tar.gz
  [ -f "$tarball" ] || { bad "$tarball missing"; continue; }
  tar -xzf "$tarball" -C "$WORK"
  for f in violet LICENSE README.md man/man1/violet.1 man/man1/violet-push.1 completions/violet.bash completions/_violet completions/violet.fish; do
    [ -s "$WORK/$name/$f" ] || bad "$name.tar.gz lacks $f"
  done
  [ -x "$WORK/$name/violet" ] || bad "$name/violet is not executable"
done
A=$WORK/violet_${VERSION}_linux_amd64/violet
B=$WORK/violet_${VERSION}_linux_arm64/violet
check "bash completion parses" bash -n "$WORK/violet_${VERSION}_linux_amd64/completions/violet.bash"
pages=$(find "$WORK/violet_${VERSION}_linux_amd64/man/man1" -name 'violet-*.1' | wc -l)
[ "$pages" -ge 10 ] && ok "$pages command man pages" || bad "only $pages command man pages"

# --- amd64: static, and the demo flow ----------------------------------------------------------
file -b "$A" | tee "$WORK/file.amd64" | grep -q 'x86-64.*static' && ok "amd64 file: $(cut -c1-90 "$WORK/file.amd64")" || bad "amd64 not static: $(cat "$WORK/file.amd64")"
# glibc's ldd says "not a dynamic executable" (exit 1) for a static-pie binary without an interpreter.
ldd_out=$(ldd "$A" 2>&1 || true)
case "$ldd_out" in *"not a dynamic executable"*|*"statically linked"*) ok "amd64 ldd: $ldd_out" ;; *) bad "amd64 ldd lists libraries: $ldd_out" ;; esac
readelf -d "$A" 2>/dev/null | grep -q NEEDED && bad "amd64 has DT_NEEDED entries" || ok "amd64 needs no shared library"

"$A" version > "$WORK/version.amd64"
head -1 "$WORK/version.amd64" | grep -qx "Version: v$VERSION" && ok "amd64 $(head -1 "$WORK/version.amd64")" || bad "amd64 version: $(head -1 "$WORK/version.amd64")"
grep -qx "Target: x86_64-unknown-linux-musl" "$WORK/version.amd64" && ok "amd64 target x86_64-unknown-linux-musl" || bad "amd64 target: $(cat "$WORK/version.amd64")"

digests() { # violet show -o json on stdin -> "reference digest" lines
  python3 -c 'import json,sys
for i in json.load(sys.stdin)["images"]:
    r=i["reference"]; print(r["repository"]+":"+r["tag"], i["digest"])'
}
"$A" show "$SAMPLE" --all -o json > "$WORK/show.amd64.json"
digests < "$WORK/show.amd64.json" > "$WORK/digests.amd64"
[ -s "$WORK/digests.amd64" ] && ok "amd64 show: $(wc -l < "$WORK/digests.amd64") images" || bad "amd64 show found no image"
check "amd64 verify" "$A" verify "$SAMPLE"

HOST=$(registry_start "$WORK/reg")
check "amd64 push to $HOST" "$A" push "$SAMPLE" --skip-crs --dest-repo "$HOST" --plain --no-auth
"$A" push "$SAMPLE" --skip-crs --dest-repo "$HOST" --plain --no-auth -o json > "$WORK/repush.json" 2> "$WORK/repush.err"
python3 - "$WORK/repush.json" > "$WORK/repush.check" 2>&1 <<'PY' && ok "amd64 re-push uploads nothing, every image unchanged" || { bad "amd64 re-push uploaded"; cat "$WORK/repush.check"; cat "$WORK/repush.json"; }
import json, sys
report = json.load(open(sys.argv[1]))
def walk(v, path=""):
    # Every counter of uploaded bytes or blobs in the report must be zero.
    if isinstance(v, dict):
        for k, x in v.items():
            walk(x, f"{path}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk(x, f"{path}[{i}]")
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        key = path.rsplit(".", 1)[-1].lower()
        if ("upload" in key or "pushed" in key or "mounted" in key) and v != 0:
            sys.exit(f"{path} = {v}")
walk(report)
results = {i["result"] for i in report["images"]}
if results != {"unchanged"}:
    sys.exit(f"image results {results}")
PY
while read -r ref digest; do
  served=$(curl -fsSI -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$HOST/v2/${ref%:*}/manifests/${ref##*:}" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
  [ "$served" = "$digest" ] && ok "registry serves $ref at $digest" || bad "registry serves $ref at '$served', show said $digest"
done < "$WORK/digests.amd64"

# --- arm64 under qemu: the same answers --------------------------------------------------------
file -b "$B" | grep -q 'ARM aarch64.*static' && ok "arm64 file: $(file -b "$B" | cut -c1-90)" || bad "arm64 not static: $(file -b "$B")"
qemu-aarch64-static "$B" version > "$WORK/version.arm64"
head -1 "$WORK/version.arm64" | grep -qx "Version: v$VERSION" && ok "arm64 (qemu) $(head -1 "$WORK/version.arm64")" || bad "arm64 version: $(cat "$WORK/version.arm64")"
grep -qx "Target: aarch64-unknown-linux-musl" "$WORK/version.arm64" && ok "arm64 target aarch64-unknown-linux-musl" || bad "arm64 target: $(cat "$WORK/version.arm64")"
diff <(grep -v '^Target:\|^Arch:' "$WORK/version.amd64") <(grep -v '^Target:\|^Arch:' "$WORK/version.arm64") > /dev/null && ok "same version, commit and date on both" || bad "version differs: $(diff "$WORK/version.amd64" "$WORK/version.arm64")"
qemu-aarch64-static "$B" show "$SAMPLE" --all -o json > "$WORK/show.arm64.json"
cmp -s "$WORK/show.amd64.json" "$WORK/show.arm64.json" && ok "arm64 show -o json is byte for byte the amd64 one" || bad "show differs: $(diff "$WORK/show.amd64.json" "$WORK/show.arm64.json" | head -5)"
digests < "$WORK/show.arm64.json" | cmp -s - "$WORK/digests.amd64" && ok "arm64 reports the same digests" || bad "arm64 digests differ"
check "arm64 verify (qemu)" qemu-aarch64-static "$B" verify "$SAMPLE"

# --- reproducible ------------------------------------------------------------------------------
if [ "$REPRO" = 1 ]; then
  echo "==> second build from scratch (target/repro, dist-repro) ..." >&2
  DIST=$ROOT/target/repro-dist CARGO_TARGET_DIR=$ROOT/target/repro scripts/release.sh > /dev/null
  if cmp -s "$DIST/SHA256SUMS" "$ROOT/target/repro-dist/SHA256SUMS"; then
    ok "reproducible: a build in another target dir gives the same SHA256SUMS"
  else
    bad "not reproducible:"; diff "$DIST/SHA256SUMS" "$ROOT/target/repro-dist/SHA256SUMS" || true
  fi
fi

if [ "$failures" -gt 0 ]; then echo "release check: $failures FAILED" >&2; exit 1; fi
echo "release check: all passed"
