#!/usr/bin/env bash
# Benchmark: violet against skopeo and against the floor, every workload measured in one run on this
# machine. Nothing here is a test assertion. docs/bench.md describes the workloads and the floors.
#
#   scripts/bench.sh [--only gib,core,wan,mirror,package[,differential]] [--runs N] [--quick]
#                    [--size-mib M] [--big-layer-mib L] [--core-images N]
#                    [--rtt-ms MS] [--bandwidth-mib MIB] [--skopeo-wan subset|full|none] [--wan-subset K]
#                    [--skopeo-runs N] [--wan-storage disk,memory] [--far-source]
#   VIOLET=/path/to/other/violet scripts/bench.sh   # measure another build (an older commit, a static one)
#
# Workloads (default: all):
#   gib      1 image x 2 platforms x 5 layers, M MiB (default 1000), incompressible, .tar and .tgz, caches
#            dropped before each push when root; skopeo from the extracted layout, "tar xzf + skopeo"
#            for .tgz; a re-push; and peak RSS of a push with big layers (2 x L MiB, default 500).
#   core     a core-shaped package (N images, default 320: 300 + 4 nested plugins x 5; ~2,300 blobs
#            from 1 KiB to 200 MiB, median 24 KiB, 40 % of the layers from a shared pool; ~1.5 GiB),
#            pushed from one .tar; a `skopeo copy --all` loop over the extracted layouts; the floor
#            (scripts/bench/floor.py push); a re-push of the present package.
#   wan      the core pushes through scripts/bench/wanproxy.py (RTT MS, default 20; MIB MiB/s, default
#            100), after measuring the proxy's own ceiling; the floors are bytes / that ceiling and the
#            registry's own loopback ingest time for the same blobs (floor.py, measured in the same run).
#            skopeo over the WAN takes ~15 min per run: by default it runs once on the first K images
#            (default 40) and its time is scaled to all images (marked "est."); --skopeo-wan full
#            runs it once on everything, none skips it. --wan-storage disk,memory (default) runs
#            violet's push twice per run: against a registry whose storage is on disk (as the other
#            workloads) and against one whose storage is in memory (tmpfs, /dev/shm), with that
#            registry's own loopback floor: on a small machine the registry's disk writes can cost
#            more than the link (docs/bench.md, "Where the WAN time goes"). "disk" or "memory" alone
#            runs one of them.
#   mirror   registry -> registry on loopback: violet mirror of the core images vs a skopeo copy --all
#            loop vs the floor (floor.py copy: GET streamed into POST + PUT, mounts, manifests).
#   package  registry -> .tgz: violet package of a directory naming the core images vs skopeo copy
#            --all docker:// oci: per image + tar czf, vs the floor (floor.py pull: every blob once).
# --far-source    mirror and package also read from the source registry through the WAN proxy (--rtt-ms,
#            --bandwidth-mib), violet only: the connected side of an air gap pulls from registries
#            far away (rows "source behind the WAN proxy", against bytes / the proxy's ceiling).
#   differential  (only when named in --only) full vs differential package bytes and push time for a
#            two-version pair, printed as its own table (scripts/bench-differential.sh, issue #14).
# --skopeo-runs N (default: --runs) runs the skopeo loops of core, mirror and package only in the
# first N runs: on a busy machine they are most of the time (0.2-0.7 s per image).
# Page caches stay warm outside the gib rows (dropping them would slow the other engineers' builds on a
# shared machine, and every tool reads the same files). Each run gets a fresh registry.
set -euo pipefail
trap 'echo "bench.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
. scripts/lib/registry.sh
. scripts/lib/bench.sh

RUNS=3 SIZE_MIB=1000 BIG_MIB=500 ONLY=gib,core,wan,mirror,package CORE_IMAGES=320
RTT_MS=20 BW_MIB=100 SKOPEO_WAN=subset WAN_SUBSET=40 QUICK=0 SPREAD_MAX=200M SKOPEO_RUNS=""
WAN_STORAGE=disk,memory FAR_SOURCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --big-layer-mib) BIG_MIB=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --core-images) CORE_IMAGES=$2; shift 2 ;;
    --rtt-ms) RTT_MS=$2; shift 2 ;;
    --bandwidth-mib) BW_MIB=$2; shift 2 ;;
    --skopeo-wan) SKOPEO_WAN=$2; shift 2 ;;
    --wan-subset) WAN_SUBSET=$2; shift 2 ;;
    --skopeo-runs) SKOPEO_RUNS=$2; shift 2 ;;
    --wan-storage) WAN_STORAGE=$2; shift 2 ;;
    --far-source) FAR_SOURCE=1; shift ;;
    # a few minutes in all: one run each, small packages; the numbers only show that it works
    --quick) QUICK=1 RUNS=1 SIZE_MIB=200 BIG_MIB=100 CORE_IMAGES=48 WAN_SUBSET=8 SPREAD_MAX=20M; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for w in ${ONLY//,/ }; do
  case "$w" in gib|core|wan|mirror|package|differential) ;; *) echo "unknown workload $w (gib, core, wan, mirror, package, differential)" >&2; exit 2 ;; esac
done
case "$SKOPEO_WAN" in subset|full|none) ;; *) echo "--skopeo-wan takes subset, full or none" >&2; exit 2 ;; esac
case "$WAN_STORAGE" in disk|memory|disk,memory|memory,disk) ;; *) echo "--wan-storage takes disk, memory or disk,memory" >&2; exit 2 ;; esac
wan_on() { [[ ",$WAN_STORAGE," == *",$1,"* ]]; }
[ "$CORE_IMAGES" -ge 24 ] || { echo "--core-images must be at least 24 (4 plugins x 5 images + 4)" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
SKOPEO_RUNS=${SKOPEO_RUNS:-$RUNS}
skopeo_run() { [ "$run" -le "$SKOPEO_RUNS" ]; }  # is this run one of the first --skopeo-runs?

need_tools docker-registry:docker-registry skopeo:skopeo curl:curl /usr/bin/time:time python3:python3
cargo build --release --quiet --bin violet --example mkpkg
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
VIOLET=${VIOLET:-$TARGET_DIR/release/violet}
MKPKG=$TARGET_DIR/release/examples/mkpkg
FLOOR=(python3 "$PWD/scripts/bench/floor.py")
WANPROXY=$PWD/scripts/bench/wanproxy.py

WORK=$(mktemp -d /tmp/violet-bench.XXXXXX)
RESULTS=$WORK/results.txt
: > "$RESULTS"
# Registries whose storage is in memory (the WAN workload's second variant) live here.
SHM=""
trap 'proxy_stop; for d in "$WORK"/reg* "$WORK"/src-reg ${SHM:+"$SHM"/reg*}; do registry_stop "$d"; done; rm -rf "$WORK" ${SHM:+"$SHM"}' EXIT
echo "violet under test: $VIOLET ($("$VIOLET" version | head -1)); workloads: $ONLY; $RUNS run(s)" >&2
T_START=$(date +%s)

# fresh [memory]: stop the previous registry, delete its storage, start an empty one (its storage
# in $SHM, tmpfs, with "memory"); sets $h and $REG. (Not called as $(fresh): a subshell would lose
# the counter.)
n=0
fresh() {
  [ -n "${REG:-}" ] && { registry_stop "$REG"; rm -rf "$REG"; }
  n=$((n+1)); REG=$WORK/reg$n
  [ "${1:-}" = memory ] && REG=$SHM/reg$n
  h=$(registry_start "$REG")
}
drop_caches() { sync; [ "$(id -u)" -eq 0 ] && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
skopeo_clean() { rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb "$HOME"/.local/share/containers/cache/blob-info-cache-v1.boltdb; }

# ------------------------------------------------------------------------------------------------
if want gib; then
  LAYER_MIB=$(( SIZE_MIB / 10 ))
  echo "gib: a ${SIZE_MIB} MiB package (2 platforms x 5 layers x ${LAYER_MIB} MiB)..." >&2
  mkdir -p "$WORK/pkg"
  TAR=$("$MKPKG" --out "$WORK/pkg" --type bundle --name bench --version v1.0.0 --images 1 --layers 5 --layer-size "${LAYER_MIB}M" --container tar --store oci 2>/dev/null)
  TGZ=$("$MKPKG" --out "$WORK/pkg" --type bundle --name bench --version v1.0.0 --images 1 --layers 5 --layer-size "${LAYER_MIB}M" --container tgz --store oci 2>/dev/null)
  mkdir -p "$WORK/extracted"
  tar -xf "$TAR" -C "$WORK/extracted"
  LAYOUT=$WORK/extracted
  # violet writes the full image reference into the layout's ref.name; skopeo's oci: transport
  # addresses the image by that exact name.
  REFNAME=$(layout_refs "$LAYOUT" | head -1)
  DEST_PATH=${REFNAME#*/}   # repository:tag without the registry host
  GIB_BYTES=$(layout_bytes "$LAYOUT")
  for run in $(seq 1 "$RUNS"); do
    echo "gib: run $run/$RUNS" >&2
    fresh; drop_caches
    measure gib-tar-violet "$GIB_BYTES" "$VIOLET" push "$TAR" --skip-crs --dest-repo "$h" --plain --no-auth -q
    fresh; drop_caches; skopeo_clean
    measure gib-tar-skopeo "$GIB_BYTES" skopeo copy --all --quiet --dest-tls-verify=false "oci:$LAYOUT:$REFNAME" "docker://$h/$DEST_PATH"
    fresh; drop_caches
    measure gib-floor "$GIB_BYTES" "${FLOOR[@]}" push --to "$h" "$LAYOUT"
    fresh; drop_caches
    measure gib-tgz-violet "$GIB_BYTES" "$VIOLET" push "$TGZ" --skip-crs --dest-repo "$h" --plain --no-auth -q
    fresh; drop_caches; skopeo_clean
    measure gib-tgz-skopeo "$GIB_BYTES" bash -c 'set -e; rm -rf "$1"; mkdir -p "$1"; tar -xzf "$2" -C "$1"
      skopeo copy --all --quiet --dest-tls-verify=false "oci:$1:$3" "docker://$4/$5"; rm -rf "$1"' _ "$WORK/x" "$TGZ" "$REFNAME" "$h" "$DEST_PATH"
    # re-push of a present package into the registry skopeo just filled
    measure gib-again-violet 0 "$VIOLET" push "$TAR" --skip-crs --dest-repo "$h" --plain --no-auth -q
  done
  echo "gib: big layers, 2 x ${BIG_MIB} MiB..." >&2
  rm -rf "$WORK/pkg" "$WORK/extracted"
  mkdir -p "$WORK/big"
  BIG=$("$MKPKG" --out "$WORK/big" --type bundle --name big --version v1.0.0 --images 1 --platforms linux/amd64 --layers 2 --layer-size "${BIG_MIB}M" --container tgz --store oci 2>/dev/null)
  fresh; drop_caches
  measure gib-bigtgz-violet "$((BIG_MIB * 2 * 1048576))" "$VIOLET" push "$BIG" --skip-crs --dest-repo "$h" --plain --no-auth -q
  rm -f "$BIG"
  BIGTAR=$("$MKPKG" --out "$WORK/big" --type bundle --name big --version v1.0.0 --images 1 --platforms linux/amd64 --layers 2 --layer-size "${BIG_MIB}M" --container tar --store oci 2>/dev/null)
  fresh; drop_caches
  measure gib-bigtar-violet "$((BIG_MIB * 2 * 1048576))" "$VIOLET" push "$BIGTAR" --skip-crs --dest-repo "$h" --plain --no-auth -q
  rm -rf "$WORK/big"
fi

# ------------------------------------------------------------------------------------------------
if want core || want wan || want mirror || want package; then
  PLUGIN_IMAGES=5; [ "$QUICK" = 1 ] && PLUGIN_IMAGES=2
  TOP_IMAGES=$(( CORE_IMAGES - 4 * PLUGIN_IMAGES ))
  echo "core: a core-shaped package ($TOP_IMAGES images + 4 plugins x $PLUGIN_IMAGES, sizes 1k..$SPREAD_MAX)..." >&2
  mkdir -p "$WORK/core"
  CORE=$("$MKPKG" --out "$WORK/core" --type core --name core --images "$TOP_IMAGES" --plugins 4 \
    --plugin-images "$PLUGIN_IMAGES" --layers 4 --size-spread "1k..$SPREAD_MAX" --size-median 24k \
    --shared-fraction 0.4 --container tar --store oci 2>/dev/null)
  # The top layout and one layout per nested plugin package: what skopeo and the floor read.
  CX=$WORK/core-x
  mkdir -p "$CX"
  tar -xf "$CORE" -C "$CX"
  LAYOUTS=("$CX")
  for p in "$CX"/plugins/*.tgz; do
    d=${p%.tgz}; mkdir -p "$d"; tar -xzf "$p" -C "$d"; LAYOUTS+=("$d")
  done
  CORE_BYTES=$(layout_bytes "${LAYOUTS[@]}")
  layout_stats "${LAYOUTS[@]}" >&2
  # skopeo_loop MODE DEST...: one `skopeo copy --all` per image, as a script so /usr/bin/time sees it whole
  SKOPEO_CORE=$WORK/skopeo-core.sh
  {
    echo 'set -e; h=$1; n=${2:-1000000}; i=0'
    for l in "${LAYOUTS[@]}"; do
      for r in $(layout_refs "$l"); do
        echo "i=\$((i+1)); [ \$i -le \$n ] || exit 0; skopeo copy --all --quiet --dest-tls-verify=false 'oci:$l:$r' \"docker://\$h/${r#*/}\""
      done
    done
  } > "$SKOPEO_CORE"
fi

if want core; then
  for run in $(seq 1 "$RUNS"); do
    echo "core: run $run/$RUNS" >&2
    fresh
    measure core-violet "$CORE_BYTES" "$VIOLET" push "$CORE" --skip-crs --dest-repo "$h" --plain --no-auth -q
    measure core-again-violet 0 "$VIOLET" push "$CORE" --skip-crs --dest-repo "$h" --plain --no-auth -q
    if skopeo_run; then
      fresh; skopeo_clean
      measure core-skopeo "$CORE_BYTES" bash "$SKOPEO_CORE" "$h"
    fi
    fresh
    measure core-floor "$CORE_BYTES" "${FLOOR[@]}" push --to "$h" "${LAYOUTS[@]}"
  done
fi

if want wan && wan_on memory; then
  # The in-memory registry holds the core package once at a time: room for it twice, to be safe.
  free_kib=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')
  if [ -n "$free_kib" ] && [ "$free_kib" -gt $(( CORE_BYTES / 512 )) ]; then
    SHM=$(mktemp -d /dev/shm/violet-bench.XXXXXX)
  else
    echo "wan: /dev/shm has no room for the core package twice; the in-memory variant is skipped" >&2
    WAN_STORAGE=disk
  fi
fi

far() { [ "$FAR_SOURCE" = 1 ] && { want mirror || want package; }; }
if want wan || far; then
  echo "wan: the proxy's own ceiling (RTT $RTT_MS ms, $BW_MIB MiB/s)..." >&2
  python3 "$WANPROXY" --selftest --rtt-ms "$RTT_MS" --bandwidth-mib "$BW_MIB" --mib 256 > "$WORK/ceiling.json"
  cat "$WORK/ceiling.json" >&2
fi

if want wan; then
  for run in $(seq 1 "$RUNS"); do
    echo "wan: run $run/$RUNS" >&2
    if wan_on disk; then
      fresh; proxy_start "$h"
      measure wan-violet "$CORE_BYTES" "$VIOLET" push "$CORE" --skip-crs --dest-repo "$PROXY" --plain --no-auth -q
      measure wan-again-violet 0 "$VIOLET" push "$CORE" --skip-crs --dest-repo "$PROXY" --plain --no-auth -q
      fresh; proxy_start "$h"
      measure wan-floor-client "$CORE_BYTES" "${FLOOR[@]}" push --to "$PROXY" "${LAYOUTS[@]}"
      proxy_stop
      # The registry's own ingest time for the same blobs (loopback, the floor client): no link
      # makes a push faster than that. The core workload measures it already when it runs.
      if ! want core; then
        fresh
        measure wan-registry-floor "$CORE_BYTES" "${FLOOR[@]}" push --to "$h" "${LAYOUTS[@]}"
      fi
    fi
    if wan_on memory; then
      # The same push to a registry that writes to memory, and that registry's loopback floor: the
      # link and the client without the cost of this machine's disk under the registry.
      fresh memory; proxy_start "$h"
      measure wanmem-violet "$CORE_BYTES" "$VIOLET" push "$CORE" --skip-crs --dest-repo "$PROXY" --plain --no-auth -q
      proxy_stop
      fresh memory
      measure wanmem-registry-floor "$CORE_BYTES" "${FLOOR[@]}" push --to "$h" "${LAYOUTS[@]}"
    fi
  done
  TOTAL_IMAGES=$(wc -l < <(for l in "${LAYOUTS[@]}"; do layout_refs "$l"; done))
  case "$SKOPEO_WAN" in
    full)
      echo "wan: skopeo, all $TOTAL_IMAGES images, once (~15 min)..." >&2
      fresh; skopeo_clean; proxy_start "$h"
      measure wan-skopeo "$CORE_BYTES" bash "$SKOPEO_CORE" "$PROXY"
      proxy_stop ;;
    subset)
      echo "wan: skopeo, the first $WAN_SUBSET of $TOTAL_IMAGES images, once..." >&2
      fresh; skopeo_clean; proxy_start "$h"
      SCALE="$TOTAL_IMAGES/$WAN_SUBSET" measure wan-skopeo "$CORE_BYTES" bash "$SKOPEO_CORE" "$PROXY" "$WAN_SUBSET"
      proxy_stop ;;
  esac
fi

if want mirror || want package; then
  # The source registry for mirror and package: the core images, pushed once (not timed).
  registry_stop "$WORK/src-reg"; rm -rf "$WORK/src-reg"
  SRC=$(registry_start "$WORK/src-reg")
  echo "mirror/package: filling the source registry $SRC..." >&2
  "$VIOLET" push "$CORE" --skip-crs --dest-repo "$SRC" --plain --no-auth -q
  mapfile -t CORE_REFS < <(for l in "${LAYOUTS[@]}"; do layout_refs "$l"; done)
  IMAGES=("${CORE_REFS[@]#*/}")   # repository:tag
fi

if want mirror; then
  SKOPEO_MIRROR=$WORK/skopeo-mirror.sh
  {
    echo 'set -e; h=$1'
    for i in "${IMAGES[@]}"; do
      echo "skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false 'docker://$SRC/$i' \"docker://\$h/$i\""
    done
  } > "$SKOPEO_MIRROR"
  for run in $(seq 1 "$RUNS"); do
    echo "mirror: run $run/$RUNS" >&2
    fresh
    SRCREG=$WORK/src-reg measure mirror-violet "$CORE_BYTES" "$VIOLET" mirror --from "$SRC" --to "$h" --from-plain --from-no-auth --plain --no-auth -q "${IMAGES[@]}"
    if skopeo_run; then
      fresh; skopeo_clean
      SRCREG=$WORK/src-reg measure mirror-skopeo "$CORE_BYTES" bash "$SKOPEO_MIRROR" "$h"
    fi
    fresh
    SRCREG=$WORK/src-reg measure mirror-floor "$CORE_BYTES" "${FLOOR[@]}" copy --from "$SRC" --to "$h" "${LAYOUTS[@]}"
    if far; then
      fresh; proxy_start "$SRC"
      SRCREG=$WORK/src-reg measure farmirror-violet "$CORE_BYTES" "$VIOLET" mirror --from "$PROXY" --to "$h" --from-plain --from-no-auth --plain --no-auth -q "${IMAGES[@]}"
      proxy_stop
    fi
  done
fi

if want package; then
  # A package source directory naming every core image at the source registry (metadata only:
  # `violet package` pulls the images).
  PKGDIR=$WORK/pkgdir
  mkdir -p "$PKGDIR"
  package_yaml "$SRC" "${CORE_REFS[@]}" > "$PKGDIR/violet.yaml"
  SKOPEO_PACKAGE=$WORK/skopeo-package.sh
  {
    echo 'set -e; out=$1; rm -rf "$out.d"; mkdir -p "$out.d"'
    for i in "${IMAGES[@]}"; do
      echo "skopeo copy --all --quiet --src-tls-verify=false 'docker://$SRC/$i' \"oci:\$out.d:$SRC/$i\""
    done
    echo 'tar -czf "$out" -C "$out.d" .; rm -rf "$out.d"'
  } > "$SKOPEO_PACKAGE"
  for run in $(seq 1 "$RUNS"); do
    echo "package: run $run/$RUNS" >&2
    rm -f "$WORK/out.tgz"
    REG=$WORK/src-reg measure package-violet "$CORE_BYTES" "$VIOLET" package "$PKGDIR" --output "$WORK/out.tgz" --plain --no-auth -q --force
    rm -f "$WORK/out.tgz"; skopeo_clean
    if skopeo_run; then
      REG=$WORK/src-reg measure package-skopeo "$CORE_BYTES" bash "$SKOPEO_PACKAGE" "$WORK/out.tgz"
    fi
    rm -f "$WORK/out.tgz"
    REG=$WORK/src-reg measure package-floor "$CORE_BYTES" "${FLOOR[@]}" pull --from "$SRC" "${LAYOUTS[@]}"
    if far; then
      # The same directory naming the images through the proxy (its port is new on every start).
      proxy_start "$SRC"
      mkdir -p "$WORK/farpkgdir"
      package_yaml "$PROXY" "${CORE_REFS[@]}" > "$WORK/farpkgdir/violet.yaml"
      REG=$WORK/src-reg measure farpackage-violet "$CORE_BYTES" "$VIOLET" package "$WORK/farpkgdir" --output "$WORK/out.tgz" --plain --no-auth -q --force
      proxy_stop; rm -f "$WORK/out.tgz"
    fi
  done
fi

echo "bench took $(( ($(date +%s) - T_START) / 60 )) min" >&2
[ "$ONLY" = differential ] || report "$RESULTS" "$WORK/ceiling.json"
# Differential packages (#14): full vs differential bytes and push time for a two-version pair,
# its own table (scripts/bench-differential.sh).
if want differential; then
  echo
  VIOLET=$VIOLET scripts/bench-differential.sh
fi
