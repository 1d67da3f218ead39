# Shell helpers of scripts/bench.sh: layouts, timed measurements with the CPU and requests they cost,
# the WAN proxy, and the final table. Source this file; it defines functions only. Expects $WORK,
# $RESULTS and $WANPROXY (and the registry helpers of registry.sh).

CLK_TCK=$(getconf CLK_TCK)

# layout_refs LAYOUT: the image references of an OCI layout's index.json (org.opencontainers.image.ref.name)
layout_refs() {
  python3 -c 'import json,sys
for m in json.load(open(sys.argv[1] + "/index.json"))["manifests"]:
    print(m["annotations"]["org.opencontainers.image.ref.name"])' "$1"
}

# layout_bytes LAYOUT...: bytes of the unique blobs (manifests included) of the layouts
layout_bytes() {
  python3 -c 'import os,sys
seen = {}
for l in sys.argv[1:]:
    d = os.path.join(l, "blobs", "sha256")
    for f in os.listdir(d):
        seen[f] = os.path.getsize(os.path.join(d, f))
print(sum(seen.values()))' "$@"
}

# layout_stats LAYOUT...: one line describing the images and blobs, for the log
layout_stats() {
  python3 - "$@" <<'PY'
import json, os, statistics, sys
images, layers, blobs, uses = 0, {}, {}, {}
for l in sys.argv[1:]:
    path = lambda d: os.path.join(l, "blobs", *d.split(":"))
    for top in json.load(open(os.path.join(l, "index.json")))["manifests"]:
        images += 1
        repo = top["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.load(open(path(top["digest"])))["manifests"]:
            man = json.load(open(path(m["digest"])))
            blobs[man["config"]["digest"]] = man["config"]["size"]
            for x in man["layers"]:
                layers[x["digest"]] = x["size"]
                blobs[x["digest"]] = x["size"]
                uses.setdefault(x["digest"], set()).add(repo)
s = sorted(layers.values())
refs = sum(len(u) for u in uses.values())
shared = sum(len(u) for u in uses.values() if len(u) > 1)
print(f"{images} images, {len(blobs)} blobs ({len(layers)} layers, {len(blobs) - len(layers)} configs), "
      f"{sum(blobs.values()) / 2**30:.2f} GiB; layers {s[0]} B .. {s[-1] / 2**20:.0f} MiB, median "
      f"{statistics.median(s) / 1024:.0f} KiB; {100 * shared / refs:.0f} % of layer references name a "
      f"layer several images share")
PY
}

# package_yaml HOST REF...: a violet.yaml naming the images at HOST (the first is the artifact)
package_yaml() {
  local host=$1; shift
  printf 'apiVersion: violet.alauda.io/v1\nkind: Package\nname: core\ndisplayName: core\ntype: plugin\n'
  printf 'version: v1.0.0\narchitectures:\n- linux/amd64\n- linux/arm64\n'
  printf 'artifact: %s/%s\nrelatedImages:\n' "$host" "${1#*/}"; shift
  for r in "$@"; do printf -- '- %s/%s\n' "$host" "${r#*/}"; done
}

cpu_ticks() { # PID -> utime + stime in clock ticks (0 when gone)
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
machine_ticks() { # "busy all": CPU ticks of the whole machine, busy (not idle, not waiting for I/O) and in all
  awk '/^cpu /{b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit}' /proc/stat
}
reg_pid() { cat "$1/registry.pid" 2>/dev/null || echo 0; }
# reg_requests DIR -> "total heads" answered so far (the registry logs every response at level info)
reg_requests() {
  [ -f "$1/registry.log" ] || { echo "0 0"; return; }
  local all heads
  all=$(grep -c 'msg="response completed' "$1/registry.log" || true)
  heads=$(grep 'msg="response completed' "$1/registry.log" | grep -c 'method=HEAD' || true)
  echo "$all $heads"
}

# proxy_start HOST: a WAN proxy in front of HOST; sets $PROXY (host:port) and $PROXY_PID
PROXY="" PROXY_PID="" PROXY_TARGET=""
proxy_start() {
  proxy_stop
  PROXY_TARGET=$1
  rm -f "$WORK/proxy.stats" "$WORK/proxy.out"
  python3 "$WANPROXY" --target "$1" --rtt-ms "$RTT_MS" --bandwidth-mib "$BW_MIB" --stats "$WORK/proxy.stats" ${PROXY_TIMELINE:+--timeline "$PROXY_TIMELINE"} > "$WORK/proxy.out" 2>"$WORK/proxy.err" &
  PROXY_PID=$!
  for _ in $(seq 1 250); do
    PROXY=$(sed -n 's/^listening on //p' "$WORK/proxy.out" 2>/dev/null)
    [ -n "$PROXY" ] && return 0
    sleep 0.02
  done
  echo "the WAN proxy did not start:" >&2; cat "$WORK/proxy.err" >&2; return 1
}
proxy_stop() {
  [ -n "$PROXY_PID" ] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  # Polled rather than `wait`ed: the proxy writes its counts as it exits, and bash's job table
  # sometimes no longer knows a background pid after process substitutions ("No record of process").
  for _ in $(seq 1 500); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.01; done
  PROXY_PID=""
}

# measure KEY BYTES CMD...: runs CMD (stdout discarded) under /usr/bin/time and appends one line of
# key=value pairs to $RESULTS: wall, peak RSS, the command's CPU, the CPU of the registry in $REG
# (and of $SRCREG, a source registry), the whole machine's busy CPU (other users' builds show
# there), the requests those registries answered (and how many were HEADs), and with a WAN proxy running its CPU and connections (the proxy is restarted afterwards,
# so each measurement has its own counts). SCALE=a/b marks a subset measurement scaled by a/b.
# A failing command is recorded as failed and its error shown; the bench goes on.
measure() {
  local key=$1 bytes=$2; shift 2
  local rp sp pp r0 s0 p0 mb0 ma0 mb1 ma1 q0 h0 sq0 sh0 q1 h1 sq1 sh1 line
  rp=$(reg_pid "$REG"); sp=$(reg_pid "${SRCREG:-/nonexistent}"); pp=${PROXY_PID:-0}
  r0=$(cpu_ticks "$rp"); s0=$(cpu_ticks "$sp"); p0=$(cpu_ticks "$pp"); read -r mb0 ma0 < <(machine_ticks)
  read -r q0 h0 < <(reg_requests "$REG")
  read -r sq0 sh0 < <(reg_requests "${SRCREG:-/nonexistent}")
  if /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.out" "$@" >/dev/null 2>"$WORK/cmd.err"; then
    local wall rss u s
    read -r wall rss u s < <(tail -1 "$WORK/time.out")
    read -r q1 h1 < <(reg_requests "$REG")
    read -r sq1 sh1 < <(reg_requests "${SRCREG:-/nonexistent}")
    line="key=$key bytes=$bytes wall=$wall rss=$rss cpu=$(echo "$u $s" | awk '{print $1 + $2}')"
    line+=" reg=$(( $(cpu_ticks "$rp") - r0 )) src=$(( $(cpu_ticks "$sp") - s0 )) tck=$CLK_TCK"
    read -r mb1 ma1 < <(machine_ticks)
    line+=" mbusy=$(( mb1 - mb0 )) mall=$(( ma1 - ma0 ))"
    line+=" req=$(( q1 - q0 + sq1 - sq0 )) head=$(( h1 - h0 + sh1 - sh0 ))"
    if [ "$pp" != 0 ]; then
      line+=" pcpu=$(( $(cpu_ticks "$pp") - p0 ))"
      proxy_stop
      line+=" conns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connections"])' "$WORK/proxy.stats" 2>/dev/null || echo 0)"
      proxy_start "$PROXY_TARGET"
    fi
    [ -n "${SCALE:-}" ] && line+=" scale=$SCALE"
    echo "$line" >> "$RESULTS"
    echo "  $key: ${wall} s, $(( rss / 1024 )) MB" >&2
  else
    echo "key=$key failed=1" >> "$RESULTS"
    echo "  $key FAILED: $(grep -v '^Command exited' "$WORK/cmd.err" | tail -3)" >&2
  fi
}

# report RESULTS CEILING_JSON: medians per key and the markdown table
report() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/../bench/report.py" "$1" "$2" "$RTT_MS" "$BW_MIB" "$RUNS" "$VIOLET"
}
