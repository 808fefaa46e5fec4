#!/usr/bin/env bash
# Side-by-side latency of `ctr run --rm IMAGE ID /bin/true` through
#   - berth-shim:  io.containerd.berth.v2 (containerd-shim-berth-v2, the SDK in the shim)
#   - runc.v2+berth: io.containerd.runc.v2 with the berth binary as its runtime
#   - runc.v2+runc:  io.containerd.runc.v2 with runc
#   - runc.v2+crun:  io.containerd.runc.v2 with crun
# on a private containerd (config, root, state and sockets in a temporary
# directory; a namespace of its own), one run of each per round.
#
# Usage: shim-v2/scripts/latency.sh [ROUNDS]   (default 30, as root)
# Needs: cargo build --release -p berth-shim-v2 -p berth-cli, and the busybox
# rootfs fixture (target/berth-fixtures/rootfs, made by any berth test).
set -euo pipefail

ROUNDS=${1:-30}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
SHIM=$TARGET/release/containerd-shim-berth-v2
BERTH=$TARGET/release/berth
ROOTFS=$TARGET/berth-fixtures/rootfs
for f in "$SHIM" "$BERTH" "$ROOTFS/bin/busybox"; do
  [[ -e $f ]] || { echo "missing $f (see the header of $0)" >&2; exit 1; }
done
for t in containerd ctr runc crun; do
  command -v "$t" >/dev/null || { echo "$t is not installed: scripts/install-deps.sh" >&2; exit 1; }
done

D=$(mktemp -d /tmp/berth-shim-latency.XXXXXX)
NS=berth-latency-$$
RUN_NEW=0
[[ -e /run/containerd ]] || RUN_NEW=1
DAEMON=

cleanup() {
  set +e
  if [[ -n $DAEMON ]]; then
    for id in $(ctr --address "$D/c.sock" -n "$NS" task ls -q 2>/dev/null); do
      ctr --address "$D/c.sock" -n "$NS" task rm -f "$id" >/dev/null 2>&1
    done
    for id in $(ctr --address "$D/c.sock" -n "$NS" container ls -q 2>/dev/null); do
      ctr --address "$D/c.sock" -n "$NS" container rm "$id" >/dev/null 2>&1
    done
    kill "$DAEMON" 2>/dev/null
    wait "$DAEMON" 2>/dev/null
  fi
  # Shims of this namespace (by pid, found through their command lines).
  for p in /proc/[0-9]*; do
    if (tr '\0' ' ' <"$p/cmdline") 2>/dev/null | grep -q -- "-namespace $NS "; then
      kill -9 "${p#/proc/}" 2>/dev/null
    fi
  done
  grep -o " $D[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  for h in /sys/fs/cgroup/*/; do
    [[ -d $h$NS ]] && find "$h$NS" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rm -rf "$D"
  ((RUN_NEW)) && rm -rf /run/containerd
}
trap cleanup EXIT

cat >"$D/config.toml" <<TOML
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/c.sock"
[ttrpc]
  address = "$D/c.sock.ttrpc"
TOML
echo "{\"root\": \"$D/berth-shim\"}" >"$D/berth.json"
mkdir -p "$D/bin" "$D/img"
ln -s "$SHIM" "$D/bin/containerd-shim-berth-v2"
# crun refuses hybrid cgroup hosts: on those, containerd (and so every shim
# and runtime, berth's included) runs in a mount namespace without
# /sys/fs/cgroup/unified, the same for all four.
if mountpoint -q /sys/fs/cgroup/unified; then
  echo "hybrid host: cgroup2 (/sys/fs/cgroup/unified) hidden from all runtimes, for crun"
  PATH=$D/bin:$PATH unshare -m --propagation private \
    sh -c 'umount -l /sys/fs/cgroup/unified && exec containerd --config "$1"' sh "$D/config.toml" \
    >"$D/containerd.log" 2>&1 &
else
  PATH=$D/bin:$PATH containerd --config "$D/config.toml" >"$D/containerd.log" 2>&1 &
fi
DAEMON=$!
CTR=(ctr --address "$D/c.sock" -n "$NS")
for _ in $(seq 300); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

# The image: the busybox rootfs as one layer of a docker archive.
tar -C "$ROOTFS" -cf "$D/img/layer.tar" .
DIGEST=$(sha256sum "$D/img/layer.tar" | cut -d' ' -f1)
echo "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$DIGEST\"]}}" >"$D/img/config.json"
echo '[{"Config":"config.json","RepoTags":["localhost/latency:latest"],"Layers":["layer.tar"]}]' >"$D/img/manifest.json"
tar -C "$D/img" -cf "$D/image.tar" manifest.json config.json layer.tar
"${CTR[@]}" images import "$D/image.tar" >/dev/null
IMAGE=localhost/latency:latest

NAMES=(berth-shim runc.v2+berth runc.v2+runc runc.v2+crun)
run_one() { # NAME ID
  case $1 in
    berth-shim) "${CTR[@]}" run --rm --fifo-dir "$D/fifo" --runtime io.containerd.berth.v2 --runtime-config-path "$D/berth.json" "$IMAGE" "$2" /bin/true ;;
    runc.v2+berth) "${CTR[@]}" run --rm --fifo-dir "$D/fifo" --runc-binary "$BERTH" --runc-root "$D/berth-root" "$IMAGE" "$2" /bin/true ;;
    runc.v2+runc) "${CTR[@]}" run --rm --fifo-dir "$D/fifo" --runc-binary "$(command -v runc)" --runc-root "$D/runc-root" "$IMAGE" "$2" /bin/true ;;
    runc.v2+crun) "${CTR[@]}" run --rm --fifo-dir "$D/fifo" --runc-binary "$(command -v crun)" --runc-root "$D/crun-root" "$IMAGE" "$2" /bin/true ;;
  esac
}

declare -A TIMES
# One warm-up run each (image unpack, page cache), not counted.
for n in "${NAMES[@]}"; do run_one "$n" "warm-${n//[^a-z0-9]/-}" >/dev/null; done
for r in $(seq "$ROUNDS"); do
  for n in "${NAMES[@]}"; do
    t0=$(date +%s%N)
    run_one "$n" "r$r-${n//[^a-z0-9]/-}" >/dev/null
    t1=$(date +%s%N)
    TIMES[$n]+="$(((t1 - t0) / 1000)) "
  done
done

printf '%-14s %8s %8s %8s %8s  (ms, %d runs each, interleaved)\n' runtime median mean p90 min "$ROUNDS"
for n in "${NAMES[@]}"; do
  echo "${TIMES[$n]}" | tr ' ' '\n' | grep . | sort -n | awk -v name="$n" '
    { v[NR] = $1; s += $1 }
    END {
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      p90 = v[int(NR * 0.9 + 0.999)]
      printf "%-14s %8.1f %8.1f %8.1f %8.1f\n", name, med / 1000, s / NR / 1000, p90 / 1000, v[1] / 1000
    }'
done
