#!/usr/bin/env bash
# The main job on a local demo setup: start a registry on a free port, build a sample multi-arch
# operator package, push it with violet (catalog resources written as files with --crs-out), show
# what landed, stop what was started.
#   scripts/demo.sh            (installs docker-registry and skopeo with apt when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/registry.sh

need_tools docker-registry:docker-registry skopeo:skopeo curl:curl
echo "== building violet (release)" >&2
cargo build --release --quiet --bin violet --example mkpkg
VIOLET=target/release/violet
MKPKG=target/release/examples/mkpkg

WORK=$(mktemp -d /tmp/violet-demo.XXXXXX)
trap 'registry_stop "$WORK/reg"; rm -rf "$WORK"' EXIT

HOST=$(registry_start "$WORK/reg")
echo "== registry listening on $HOST" >&2

PKG=$("$MKPKG" --out "$WORK" --type bundle --name demo-operator --version v1.2.0 --images 3 --layers 2 --layer-size 4M --container tgz --store distribution)
echo "== sample package: $PKG" >&2

set -x
"$VIOLET" show "$PKG" --all
# Images into the registry; the catalog resources as files (there is no platform here)
"$VIOLET" push "$PKG" --dest-repo "$HOST" --plain --no-auth --crs-out "$WORK/crs"
# A second run finds everything in place and uploads nothing
"$VIOLET" push "$PKG" --dest-repo "$HOST" --plain --no-auth --skip-crs
set +x

echo "== catalog resources written:" >&2
find "$WORK/crs" -type f | sort | while read -r f; do echo "--- ${f#$WORK/}"; cat "$f"; done

echo "== what landed (skopeo inspect --raw):" >&2
for ref in $("$VIOLET" show "$PKG" -o json | python3 -c 'import json,sys; [print(i["reference"]["repository"]+":"+i["reference"]["tag"]) for i in json.load(sys.stdin)["images"]]'); do
  digest=$(skopeo inspect --raw --tls-verify=false "docker://$HOST/$ref" | sha256sum | cut -d' ' -f1)
  echo "$HOST/$ref  sha256:$digest"
done
