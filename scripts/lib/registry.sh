# Shell helpers shared by demo.sh and bench.sh: install and run Debian's docker-registry as a plain
# process on a free loopback port. Source this file; it defines functions only.

need_tools() { # install missing Debian packages (apt) for the given commands
  local missing=()
  for spec in "$@"; do
    local cmd=${spec%%:*} pkg=${spec#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

# registry_start DIR -> prints host:port; the registry's pid is in DIR/registry.pid
registry_start() {
  local dir=$1
  mkdir -p "$dir/storage"
  cat > "$dir/config.yml" <<CFG
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/storage}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http:
  addr: 127.0.0.1:0
  secret: not-a-secret-local-only
CFG
  docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
  echo $! > "$dir/registry.pid"
  local port=""
  for _ in $(seq 1 250); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$dir/registry.log" 2>/dev/null | head -1 | sed 's/.*://')
    [ -n "$port" ] && break
    sleep 0.02
  done
  [ -n "$port" ] || { echo "registry did not start; log:" >&2; cat "$dir/registry.log" >&2; return 1; }
  for _ in $(seq 1 250); do
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.02
  done
  echo "127.0.0.1:$port"
}

registry_stop() { # DIR
  [ -f "$1/registry.pid" ] && kill "$(cat "$1/registry.pid")" 2>/dev/null || true
  [ -f "$1/registry.pid" ] && wait "$(cat "$1/registry.pid")" 2>/dev/null || true
  rm -f "$1/registry.pid"
}
