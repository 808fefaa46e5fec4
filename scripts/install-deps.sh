#!/usr/bin/env bash
# Installs the Debian 12 packages berth's build, tests, examples and benches
# need. Idempotent: installs only what is missing, and runs `apt-get update`
# at most once, only when the package lists are absent or too old to install
# from. Run as root (CI does, from .ci/run).
set -euo pipefail

PACKAGES=(
  busybox-static  # static /bin/busybox: the test rootfs built by berth-fixtures
  libseccomp-dev  # only the oracle of berth-conformance's seccomp differential test and the seccomp bench (berth does not link it)
  pkg-config      # lets libseccomp-sys find libseccomp for that test
  iproute2        # ip: netns, veth, bridge setup in network tests
  nftables        # nft: NAT and port-forward tests
  time            # /usr/bin/time: peak RSS and timings in benches
  procps          # ps, kill, pgrep: used by tests; copied into the host-binaries rootfs fallback
  libc-bin        # ldd: berth-fixtures finds the shared libraries of host binaries with it
  coreutils       # chroot: berth-fixtures' rootfs tests run a shell chrooted
  podman          # a real client of the CLI: cli/tests/clients.rs (podman --runtime berth)
  conmon          # podman's container monitor, which calls berth create/start/exec
  containerd      # the other real client: containerd + ctr + containerd-shim-runc-v2; shim-v2/tests/containerd.rs runs containerd-shim-berth-v2 under it
  bsdutils        # script: gives ctr a terminal in shim-v2/tests/containerd.rs (exec --tty, run -t)
  runc            # side-by-side benchmarks (cargo xtask bench-compare)
  crun            # side-by-side benchmarks
  cpio            # vm-tests: initramfs round-trip checks
  qemu-system-x86 # cargo xtask vm-test: boots the kernel × cgroup-mode guests (TCG)
  binutils        # objcopy: cargo xtask vm-test strips debug info from the guests' test binaries
  docker-registry # a real OCI distribution registry on 127.0.0.1: sdk/tests/images.rs
  skopeo          # places test images into that registry (oci: layout -> docker://)
  containernetworking-plugins # CNI plugins (bridge, host-local, portmap, firewall, tuning in /usr/lib/cni): sdk/tests/network.rs
  iptables        # what the portmap, firewall and bridge (ipMasq) CNI plugins call
  uidmap          # setuid newuidmap/newgidmap: rootless containers mapping /etc/subuid and /etc/subgid ranges (sdk/tests/rootless.rs, cli/tests/rootless.rs)
  slirp4netns     # user-mode networking of rootless containers, --network slirp4netns (cli/tests/rootless.rs)
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -qx 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
install() {
  "${APT[@]}" install --no-install-recommends "${missing[@]}"
}

echo "install-deps.sh: installing ${missing[*]}"
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  "${APT[@]}" update
  install
elif ! install; then
  # The lists may be stale (a package version gone from the mirror): refresh once.
  "${APT[@]}" update
  install
fi

# docker-registry's package starts a registry on :5000 where systemd runs;
# the tests start their own on 127.0.0.1 with a config of theirs.
if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null \
  && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry || true
fi
