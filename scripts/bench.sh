#!/usr/bin/env bash
# Benchmark: violet push vs skopeo copy --all, measured in one run on this machine.
#
#   scripts/bench.sh [--runs N] [--size-mib M] [--big-layer-mib L]
#   VIOLET=/path/to/other/violet scripts/bench.sh   # measure another build (an older commit, a static one)
#
# Builds a two-architecture package of M MiB (default 1000: 1 image x 2 platforms x 5 layers) with
# incompressible layers as an OCI layout, in .tar and .tgz form. For each of N runs (default 3), each
# tool pushes into a fresh registry (caches dropped first when root): violet from .tar, violet from
# .tgz, skopeo from the extracted layout, and "tar xzf + skopeo" for the .tgz case. Then a re-push
# of a present package, and peak RSS of a push with big layers (default 2 x 500 MiB). Prints
# medians, ratios and peak RSS as a markdown table. Nothing here is a test assertion.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/registry.sh

RUNS=3 SIZE_MIB=1000 BIG_MIB=500
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --big-layer-mib) BIG_MIB=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

need_tools docker-registry:docker-registry skopeo:skopeo curl:curl /usr/bin/time:time
cargo build --release --quiet --bin violet --example mkpkg
VIOLET=${VIOLET:-$PWD/target/release/violet}
MKPKG=$PWD/target/release/examples/mkpkg

WORK=$(mktemp -d /tmp/violet-bench.XXXXXX)
trap 'for d in "$WORK"/reg*; do registry_stop "$d"; done; rm -rf "$WORK"' EXIT

LAYER_MIB=$(( SIZE_MIB / 10 ))
echo "violet under test: $VIOLET ($("$VIOLET" version | head -1))" >&2
echo "generating a ${SIZE_MIB} MiB package (2 platforms x 5 layers x ${LAYER_MIB} MiB)..." >&2
mkdir -p "$WORK/pkg"
TAR=$("$MKPKG" --out "$WORK/pkg" --type bundle --name bench --version v1.0.0 --images 1 --layers 5 --layer-size "${LAYER_MIB}M" --container tar --store oci)
TGZ=$("$MKPKG" --out "$WORK/pkg" --type bundle --name bench --version v1.0.0 --images 1 --layers 5 --layer-size "${LAYER_MIB}M" --container tgz --store oci)
mkdir -p "$WORK/extracted"
tar -xf "$TAR" -C "$WORK/extracted"
LAYOUT=$(dirname "$(find "$WORK/extracted" -name oci-layout | head -1)")
# violet writes the full image reference into the layout's ref.name; skopeo's oci: transport
# addresses the image by that exact name.
REFNAME=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$LAYOUT/index.json")
DEST_PATH=${REFNAME#*/}   # repository:tag without the registry host

drop_caches() { sync; [ "$(id -u)" -eq 0 ] && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb; }
# fresh: stop the previous registry, delete its storage, start an empty one; sets $h.
# (Not called as $(fresh): a subshell would lose the counter.)
n=0
fresh() {
  registry_stop "$WORK/reg$n"; rm -rf "$WORK/reg$n"
  n=$((n+1)); h=$(registry_start "$WORK/reg$n")
}
# timed CMD... -> "seconds peak_rss_kb"
timed() { /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >/dev/null 2>"$WORK/cmd.err" || { cat "$WORK/cmd.err" >&2; return 1; }; cat "$WORK/time.out"; }

declare -A T R
for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS" >&2
  fresh; drop_caches
  read -r t r < <(timed "$VIOLET" push "$TAR" --skip-crs --dest-repo "$h" --plain --no-auth -q); T[vtar]+="$t "; R[vtar]+="$r "
  fresh; drop_caches
  read -r t r < <(timed "$VIOLET" push "$TGZ" --skip-crs --dest-repo "$h" --plain --no-auth -q); T[vtgz]+="$t "; R[vtgz]+="$r "
  fresh; drop_caches
  read -r t r < <(timed skopeo copy --all --quiet --dest-tls-verify=false "oci:$LAYOUT:$REFNAME" "docker://$h/$DEST_PATH"); T[sko]+="$t "; R[sko]+="$r "
  fresh; drop_caches; rm -rf "$WORK/x"; mkdir -p "$WORK/x"
  start=$(date +%s.%N)
  tar -xzf "$TGZ" -C "$WORK/x"
  L2=$(dirname "$(find "$WORK/x" -name oci-layout | head -1)")
  skopeo copy --all --quiet --dest-tls-verify=false "oci:$L2:$REFNAME" "docker://$h/$DEST_PATH" >/dev/null
  T[xsko]+="$(python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$start" "$(date +%s.%N)") "
  rm -rf "$WORK/x"
  # re-push of a present package into the registry skopeo just filled
  read -r t r < <(timed "$VIOLET" push "$TAR" --skip-crs --dest-repo "$h" --plain --no-auth -q); T[again]+="$t "; R[again]+="$r "
done

echo "big layers: 2 x ${BIG_MIB} MiB..." >&2
mkdir -p "$WORK/big"
BIG=$("$MKPKG" --out "$WORK/big" --type bundle --name big --version v1.0.0 --images 1 --platforms linux/amd64 --layers 2 --layer-size "${BIG_MIB}M" --container tgz --store oci)
fresh; drop_caches
read -r t r < <(timed "$VIOLET" push "$BIG" --skip-crs --dest-repo "$h" --plain --no-auth -q); T[big]="$t"; R[big]="$r"
BIGTAR=$("$MKPKG" --out "$WORK/big" --type bundle --name big --version v1.0.0 --images 1 --platforms linux/amd64 --layers 2 --layer-size "${BIG_MIB}M" --container tar --store oci)
fresh; drop_caches
read -r t r < <(timed "$VIOLET" push "$BIGTAR" --skip-crs --dest-repo "$h" --plain --no-auth -q); T[bigtar]="$t"; R[bigtar]="$r"

python3 - "$SIZE_MIB" "$BIG_MIB" "${T[vtar]}" "${T[vtgz]}" "${T[sko]}" "${T[xsko]}" "${T[again]}" "${R[vtar]}" "${R[vtgz]}" "${R[sko]}" "${R[again]}" "${T[big]}" "${R[big]}" "${T[bigtar]}" "${R[bigtar]}" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
size, big = a[0], a[1]
f = lambda s: [float(x) for x in s.split()]
vtar, vtgz, sko, xsko, again = (f(x) for x in a[2:7])
rvtar, rvtgz, rsko, ragain = (f(x) for x in a[7:11])
tbig, rbig, tbigtar, rbigtar = float(a[11]), float(a[12]), float(a[13]), float(a[14])
m = st.median
mb = lambda kb: f"{kb/1024:.0f} MB"
print(f"\n{len(vtar)} runs, {size} MiB two-arch package, incompressible layers, plain HTTP on loopback, fresh registry per run\n")
print("| what | median wall | vs skopeo | peak RSS |")
print("|---|---|---|---|")
print(f"| skopeo copy --all (extracted OCI layout) | {m(sko):.2f} s | 1.00x | {mb(m(rsko))} |")
print(f"| violet push .tar | {m(vtar):.2f} s | {m(vtar)/m(sko):.2f}x | {mb(max(rvtar))} |")
print(f"| tar xzf + skopeo copy --all | {m(xsko):.2f} s | 1.00x | - |")
print(f"| violet push .tgz | {m(vtgz):.2f} s | {m(vtgz)/m(xsko):.2f}x (vs extract + skopeo) | {mb(max(rvtgz))} |")
print(f"| violet re-push, everything present | {m(again):.2f} s | - | {mb(max(ragain))} |")
print(f"| violet push .tgz, 2 x {big} MiB layers | {tbig:.2f} s | - | {mb(rbig)} |")
print(f"| violet push .tar, 2 x {big} MiB layers | {tbigtar:.2f} s | - | {mb(rbigtar)} |")
PY
