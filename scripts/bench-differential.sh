#!/usr/bin/env bash
# Benchmark of differential packages (#14): full vs differential package bytes and push time for
# a two-version pair of a core-shaped package, measured in one run on this machine.
#   scripts/bench-differential.sh [--layer-mib L] [--images N]
#   VIOLET=/path/to/other/violet scripts/bench-differential.sh
#
# v1: N images x 2 platforms x 5 layers of L MiB (default 3 x 2 x 5 x 10 MiB, incompressible; the work directory needs about 4 x the v2 package);
# v2: the same images with a sixth layer each (its first five layers are v1's). Both are pushed
# into a source registry; the site registry gets v1, `violet inventory` lists it, and
# `violet package` builds v2 from the source twice: full, and `--base` the inventory. Then each
# is pushed to a registry holding v1 (a fresh one per push). Prints a markdown table; nothing
# here is a test assertion (tests/it/differential.rs asserts the sizes and digests).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/registry.sh

LAYER_MIB=10 IMAGES=3
while [ $# -gt 0 ]; do
  case "$1" in
    --layer-mib) LAYER_MIB=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

need_tools docker-registry:docker-registry curl:curl /usr/bin/time:time python3:python3
cargo build --release --quiet --bin violet --example mkpkg
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
VIOLET=${VIOLET:-$TARGET_DIR/release/violet}
MKPKG=$TARGET_DIR/release/examples/mkpkg
WORK=$(mktemp -d /tmp/violet-bench-diff.XXXXXX)
trap 'for d in "$WORK"/reg*; do registry_stop "$d"; done; rm -rf "$WORK"' EXIT
A=(--plain --no-auth)

mk() { "$MKPKG" --out "$WORK/$1" --type plugin --name core --version "$1" --images "$IMAGES" \
  --layers "$2" --layer-size "${LAYER_MIB}M" --container tgz --store distribution; }
echo "generating v1 and v2 ($IMAGES images x 2 platforms x 5 / 6 layers x $LAYER_MIB MiB)..." >&2
V1=$(mk v1.0.0 5)
V2=$(mk v2.0.0 6)

SRC=$(registry_start "$WORK/reg-src")
"$VIOLET" push "$V1" --dest-repo "$SRC" "${A[@]}" --skip-crs -q
"$VIOLET" push "$V2" --dest-repo "$SRC" "${A[@]}" --skip-crs -q

# The package source directory: v2's images named at the source registry.
mkdir -p "$WORK/src"
"$VIOLET" show "$V2" -o json | python3 -c '
import json, sys
src = sys.argv[1]
pkg = json.load(sys.stdin)
refs = [src + "/" + i["reference"]["repository"] + ":" + i["reference"]["tag"] for i in pkg["images"]]
print("name: core\ntype: plugin\nversion: v2.0.0\nartifact: " + refs[0])
print("relatedImages:\n" + "".join("  - " + r + "\n" for r in refs[1:]), end="")
' "$SRC" > "$WORK/src/violet.yaml"

site() { # a registry holding v1; sets $h
  h=$(registry_start "$WORK/reg-$1")
  "$VIOLET" push "$V1" --dest-repo "$h" "${A[@]}" --skip-crs -q
}
timed() { /usr/bin/time -f "%e" -o "$WORK/time.out" "$@" >/dev/null 2>"$WORK/cmd.err" || { cat "$WORK/cmd.err" >&2; return 1; }; cat "$WORK/time.out"; }

site inv
"$VIOLET" inventory --dest-repo "$h" "${A[@]}" -o "$WORK/site.json" -q
"$VIOLET" package "$WORK/src" --output "$WORK/full.tgz" "${A[@]}" -q
"$VIOLET" package "$WORK/src" --output "$WORK/diff.tgz" "${A[@]}" --base "$WORK/site.json" -q

site full; T_FULL=$(timed "$VIOLET" push "$WORK/full.tgz" --dest-repo "$h" "${A[@]}" --skip-crs)
site diff; T_DIFF=$(timed "$VIOLET" push "$WORK/diff.tgz" --dest-repo "$h" "${A[@]}" --skip-crs)

FULL=$(stat -c %s "$WORK/full.tgz") DIFF=$(stat -c %s "$WORK/diff.tgz") INV=$(stat -c %s "$WORK/site.json")
mib() { python3 -c "print(f'{$1/1048576:.1f} MiB')"; }
echo
echo "| v2 package | bytes | vs full | push to a registry holding v1 |"
echo "|---|---|---|---|"
echo "| full | $(mib "$FULL") | 1.00 | ${T_FULL} s |"
echo "| differential (\`--base\` inventory, $(python3 -c "print(f'{$INV/1024:.1f}')") KiB) | $(mib "$DIFF") | $(python3 -c "print(f'{$DIFF/$FULL:.3f}')") | ${T_DIFF} s |"
