#!/usr/bin/env bash
# Builds the programs the test suite runs against (control plane, container runtime, CNI peers)
# from the Go module proxy into a cache folder outside the repository, and packs the offline pause
# image. Only what is missing, or whose pinned version changed, is rebuilt.
#
# Usage: tests/infra/build-peers.sh [peer...]
#   peers: cnitool pause plugins crictl containerd etcd kube kube-control kubelet multus
#          multus-thick whereabouts helm (default: all, in this order)
# Env:   HYDRA_PEERS_DIR  cache folder (default: $HOME/.cache/hydra-peers)
#        HYDRA_PEERS_SKIP_APT=1  do not install missing Debian packages
# Logs go to stderr; the last stdout line is PEERS_DIR=<folder>.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

peers_dir=${HYDRA_PEERS_DIR:-$HOME/.cache/hydra-peers}
bin_dir=$peers_dir/bin
cni_bin_dir=$peers_dir/cni-bin
stamp_dir=$peers_dir/stamps
src_dir=$peers_dir/src
mkdir -p "$bin_dir" "$cni_bin_dir" "$stamp_dir" "$src_dir" "$peers_dir/images"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
# The builds share two cores with everything else on the machine: stay polite.
go_cmd=(nice -n 10 go)

log() { printf '[build-peers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

all_peers=(cnitool pause plugins crictl containerd etcd kube kube-control kubelet multus multus-thick
  whereabouts helm)
# The Kubernetes peers asked for in this run (see build_kube_peers).
kube_wanted=()

# A peer is current when its stamp records the wanted key and all its outputs exist.
is_current() { # name key outputs...
  local name=$1 key=$2; shift 2
  [[ -f $stamp_dir/$name && "$(cat "$stamp_dir/$name")" == "$key" ]] || return 1
  local f
  for f in "$@"; do [[ -x $f || -f $f ]] || return 1; done
}

write_stamp() { printf '%s\n' "$2" >"$stamp_dir/$1"; }

# Moves freshly built files from a staging folder into place, one rename per file, so a reader
# never sees a half-written binary.
install_from() { # staging-dir target-dir files...
  local from=$1 to=$2 f; shift 2
  for f in "$@"; do
    [[ -f $from/$f ]] || die "build produced no $f"
    mv -f "$from/$f" "$to/.$f.new" && mv -f "$to/.$f.new" "$to/$f"
  done
}

# CPU seconds (user + system) used so far by this shell's finished children. `times` must run in
# this shell (a command substitution would be a child with counters of its own), so its output
# goes through a file.
children_cpu() {
  local file=$peers_dir/.times.$BASHPID
  times >"$file"
  awk 'NR == 2 {
    n = split($0, f, " ")
    for (i = 1; i <= n; i++) { split(f[i], p, /[ms]/); total += p[1] * 60 + p[2] }
    printf "%.1f", total
  }' "$file"
  rm -f "$file"
}

# Runs a build and records its wall time and CPU time. On a busy machine the wall time says little;
# the CPU time (all cores together) is what the build costs wherever it runs.
timed() { # name version command...
  local name=$1 version=$2 start end cpu; shift 2
  log "building $name $version"
  local before=$peers_dir/.cpu-before.$BASHPID after=$peers_dir/.cpu-after.$BASHPID
  start=$(date +%s)
  children_cpu >"$before"
  "$@"
  end=$(date +%s)
  children_cpu >"$after"
  cpu=$(awk 'NR == FNR { a = $1; next } { printf "%.0f", $1 - a }' "$before" "$after")
  rm -f "$before" "$after"
  log "built $name $version in $((end - start))s (${cpu}s CPU)"
  printf '%s\t%s\t%s\t%ss\t%ss cpu\n' "$(date -u +%FT%TZ)" "$name" "$version" "$((end - start))" \
    "$cpu" >>"$peers_dir/build-times.tsv"
}

fresh_dir() { rm -rf "$1" && mkdir -p "$1"; }

ensure_debian_packages() {
  [[ ${HYDRA_PEERS_SKIP_APT:-} == 1 ]] && return 0
  local missing=() p
  # libnftables1: hydra's policy role loads it, and tools/image.ts puts it into hydra's image.
  for p in runc containernetworking-plugins iproute2 iptables openssl gcc libc6-dev tar jq util-linux \
    libnftables1; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

# --- scratch modules --------------------------------------------------------------------------
# Every peer is built from a generated scratch module that requires the peer's module at its pinned
# version. The scratch go.mod repeats the upstream go.mod's `go` and `godebug` lines (they set the
# runtime's GODEBUG defaults) and its replace directives that point at other modules. Relative
# replaces are dropped, except Kubernetes' staging ones, which become the published staging modules
# (k8s.io/X v0.<minor>.<patch>); etcd's point at sibling modules released at the same version.
prepare_scratch() { # work-dir module version
  local work=$1 module=$2 version=$3 info upstream upstream_dir
  mkdir -p "$work"
  info=$(cd "$work" && go mod download -json "$module@$version")
  upstream=$(jq -r '.GoMod // empty' <<<"$info")
  upstream_dir=$(jq -r '.Dir // empty' <<<"$info")
  [[ -n $upstream && -n $upstream_dir ]] ||
    die "cannot download $module@$version: $(jq -r '.Error // empty' <<<"$info")"
  local staging=""
  [[ $module == k8s.io/kubernetes ]] && staging="v0.${version#v1.}"
  local args=()
  mapfile -t args < <(go mod edit -json "$upstream" | jq -r --arg staging "$staging" '
    (if .Go then "-go=" + .Go else empty end),
    ((.Godebug // [])[] | "-godebug=" + .Key + "=" + .Value),
    ((.Replace // [])[]
      | if (.New.Path | startswith("./staging/src/")) and $staging != "" then
          "-replace=" + .Old.Path + "=" + .Old.Path + "@" + $staging
        elif (.New.Path | startswith(".")) then empty
        else "-replace=" + .Old.Path + (if .Old.Version then "@" + .Old.Version else "" end)
          + "=" + .New.Path + (if .New.Version then "@" + .New.Version else "" end)
        end)')
  (
    cd "$work"
    rm -f go.mod go.sum
    go mod init "local/$(basename "$work")" >/dev/null 2>&1
    go mod edit -require="$module@$version" "${args[@]}"
    # The upstream go.sum pins the same dependency hashes the peer was released with, so they are
    # verified against it rather than looked up one by one.
    if [[ -f $upstream_dir/go.sum ]]; then cp "$upstream_dir/go.sum" go.sum && chmod u+w go.sum; fi
  )
}

# Builds packages of one module version into <work>/out. Extra `go build` flags come first.
build_module() { # name work-dir module version [go-build-flags...] -- packages...
  local name=$1 work=$2 module=$3 version=$4; shift 4
  local flags=()
  while (($# > 0)) && [[ $1 != -- ]]; do flags+=("$1"); shift; done
  shift
  prepare_scratch "$work" "$module" "$version"
  rm -rf "$work/out" && mkdir -p "$work/out"
  (cd "$work" && timed "$name" "$version" "${go_cmd[@]}" build -mod=mod "${flags[@]}" -o out/ "$@")
}

# --- cnitool ---------------------------------------------------------------------------------
build_cnitool() {
  local key="cni $CNI_VERSION" m=github.com/containernetworking/cni
  is_current cnitool "$key" "$bin_dir/cnitool" && return 0
  build_module cnitool "$src_dir/cnitool" "$m" "$CNI_VERSION" -ldflags "-s -w" -- "$m/cnitool"
  install_from "$src_dir/cnitool/out" "$bin_dir" cnitool
  write_stamp cnitool "$key"
}

# --- reference plugins ------------------------------------------------------------------------
plugin_package() {
  case $1 in
    bridge | host-device | ipvlan | loopback | macvlan | ptp | vlan | dummy | tap) echo "main/$1" ;;
    host-local | static | dhcp) echo "ipam/$1" ;;
    tuning | portmap | firewall | bandwidth | sbr | vrf) echo "meta/$1" ;;
    *) die "unknown reference plugin $1" ;;
  esac
}

build_plugins() {
  local key="plugins $CNI_PLUGINS_VERSION $CNI_PLUGINS" m=github.com/containernetworking/plugins
  local outputs=() pkgs=() p
  for p in $CNI_PLUGINS; do
    outputs+=("$cni_bin_dir/$p")
    pkgs+=("$m/plugins/$(plugin_package "$p")")
  done
  is_current plugins "$key" "${outputs[@]}" && return 0
  build_module plugins "$src_dir/plugins" "$m" "$CNI_PLUGINS_VERSION" -ldflags \
    "-s -w -X $m/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" -- "${pkgs[@]}"
  # shellcheck disable=SC2086
  install_from "$src_dir/plugins/out" "$cni_bin_dir" $CNI_PLUGINS
  write_stamp plugins "$key"
}

# --- crictl -----------------------------------------------------------------------------------
build_crictl() {
  local key="cri-tools $CRI_TOOLS_VERSION" m=sigs.k8s.io/cri-tools
  is_current crictl "$key" "$bin_dir/crictl" && return 0
  # The checksum database has no entry for this cri-tools tag; the module proxy serves it.
  GONOSUMDB=$m build_module crictl "$src_dir/crictl" "$m" "$CRI_TOOLS_VERSION" \
    -ldflags "-s -w -X $m/pkg/version.Version=$CRI_TOOLS_VERSION" -- "$m/cmd/crictl"
  install_from "$src_dir/crictl/out" "$bin_dir" crictl
  write_stamp crictl "$key"
}

# --- containerd -------------------------------------------------------------------------------
build_containerd() {
  local key="containerd $CONTAINERD_VERSION" m=github.com/containerd/containerd/v2
  is_current containerd "$key" "$bin_dir/containerd" "$bin_dir/containerd-shim-runc-v2" \
    "$bin_dir/ctr" && return 0
  build_module containerd "$src_dir/containerd" "$m" "$CONTAINERD_VERSION" -tags no_btrfs \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" -- \
    "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
  install_from "$src_dir/containerd/out" "$bin_dir" containerd containerd-shim-runc-v2 ctr
  write_stamp containerd "$key"
}

# --- etcd -------------------------------------------------------------------------------------
# etcd's server module has no main package of its own that `go build` can reach from outside, so
# the scratch module gets a one-line main around etcdmain (what etcd's own main does).
build_etcd() {
  local key="etcd $ETCD_VERSION" m=go.etcd.io/etcd/server/v3
  is_current etcd "$key" "$bin_dir/etcd" && return 0
  local work=$src_dir/etcd
  mkdir -p "$work"
  cat >"$work/main.go" <<'EOF'
// Command etcd runs the etcd server; built from the etcd server module for tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  build_module etcd "$work" "$m" "$ETCD_VERSION" -ldflags "-s -w" -- .
  mv "$work/out/etcd-build" "$work/out/etcd" 2>/dev/null || true
  install_from "$work/out" "$bin_dir" etcd
  write_stamp etcd "$key"
}

# --- Kubernetes: kube-apiserver, kubectl, kube-scheduler, kube-controller-manager, kubelet ------
kube_ldflags() {
  local kv=$KUBERNETES_VERSION minor p=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
  minor=$(echo "$kv" | cut -d. -f2)
  echo "-s -w -X $p.gitVersion=$kv -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean" \
    "-X $c.gitVersion=$kv -X $c.gitMajor=1 -X $c.gitMinor=$minor"
}

# The programs of each Kubernetes peer (each peer has its own stamp).
kube_peer_commands() {
  case $1 in
    kube) echo "kube-apiserver kubectl" ;;
    kube-control) echo "kube-scheduler kube-controller-manager" ;;
    kubelet) echo "kubelet" ;;
    *) die "not a Kubernetes peer: $1" ;;
  esac
}

kube_peer_key() { if [[ $1 == kube ]]; then echo "kubernetes $KUBERNETES_VERSION"; else echo "$1 $KUBERNETES_VERSION"; fi; }

kube_peer_current() {
  local outputs=() c
  for c in $(kube_peer_commands "$1"); do outputs+=("$bin_dir/$c"); done
  is_current "$1" "$(kube_peer_key "$1")" "${outputs[@]}"
}

# Builds every wanted Kubernetes peer that is out of date with one `go build` in one scratch
# module: the packages they share (client-go, apiserver, most of k8s.io/kubernetes/pkg) compile
# once, and each link overlaps with the remaining compilation. Called for each of them; the first
# call does the work.
build_kube_peers() {
  local stale=() commands=() p c m=k8s.io/kubernetes
  for p in "${kube_wanted[@]}"; do kube_peer_current "$p" || stale+=("$p"); done
  ((${#stale[@]} > 0)) || return 0
  for p in "${stale[@]}"; do
    for c in $(kube_peer_commands "$p"); do commands+=("$c"); done
  done
  build_module "${stale[*]}" "$src_dir/kube" "$m" "$KUBERNETES_VERSION" -ldflags "$(kube_ldflags)" \
    -- "${commands[@]/#/$m/cmd/}"
  install_from "$src_dir/kube/out" "$bin_dir" "${commands[@]}"
  for p in "${stale[@]}"; do write_stamp "$p" "$(kube_peer_key "$p")"; done
}

build_kube() { build_kube_peers; }
build_kube-control() { build_kube_peers; }
build_kubelet() { build_kube_peers; }

# --- multus -----------------------------------------------------------------------------------
# Two peers from the same module version and scratch module: the thin plugin (multus) and the thick
# plugin's daemon and shim (multus-daemon, multus-shim); the second build reuses the first's
# compiled packages.
build_multus() {
  local key="multus $MULTUS_VERSION" m=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
  is_current multus "$key" "$bin_dir/multus" && return 0
  build_module multus "$src_dir/multus" "$m" "$MULTUS_VERSION" \
    -ldflags "-s -w -X $m/pkg/multus.version=$MULTUS_VERSION" -- "$m/cmd/multus"
  install_from "$src_dir/multus/out" "$bin_dir" multus
  write_stamp multus "$key"
}

build_multus-thick() {
  local key="multus-thick $MULTUS_VERSION" m=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
  is_current multus-thick "$key" "$bin_dir/multus-daemon" "$bin_dir/multus-shim" && return 0
  build_module multus-thick "$src_dir/multus" "$m" "$MULTUS_VERSION" \
    -ldflags "-s -w -X $m/pkg/multus.version=$MULTUS_VERSION" -- \
    "$m/cmd/multus-daemon" "$m/cmd/multus-shim"
  install_from "$src_dir/multus/out" "$bin_dir" multus-daemon multus-shim
  write_stamp multus-thick "$key"
}

# --- whereabouts --------------------------------------------------------------------------------
build_whereabouts() {
  local key="whereabouts $WHEREABOUTS_VERSION" m=github.com/k8snetworkplumbingwg/whereabouts
  is_current whereabouts "$key" "$bin_dir/whereabouts" && return 0
  build_module whereabouts "$src_dir/whereabouts" "$m" "$WHEREABOUTS_VERSION" \
    -ldflags "-s -w -X $m/pkg/version.Version=$WHEREABOUTS_VERSION" -- "$m/cmd"
  mv "$src_dir/whereabouts/out/cmd" "$src_dir/whereabouts/out/whereabouts"
  install_from "$src_dir/whereabouts/out" "$bin_dir" whereabouts
  write_stamp whereabouts "$key"
}

# --- helm ---------------------------------------------------------------------------------------
# Helm's Makefile stamps its version and the Kubernetes version its libraries speak (the default
# of `helm template`'s .Capabilities.KubeVersion) at link time; so does this build.
build_helm() {
  local key="helm $HELM_VERSION" m=helm.sh/helm/v3
  is_current helm "$key" "$bin_dir/helm" && return 0
  local upstream client_go minor
  upstream=$(cd "$src_dir" && go mod download -json "$m@$HELM_VERSION" | jq -r '.GoMod // empty')
  [[ -n $upstream ]] || die "cannot download $m@$HELM_VERSION"
  client_go=$(go mod edit -json "$upstream" |
    jq -r '.Require[] | select(.Path == "k8s.io/client-go") | .Version')
  minor=$(echo "$client_go" | cut -d. -f2)
  [[ $minor =~ ^[0-9]+$ ]] || die "cannot tell which Kubernetes version helm $HELM_VERSION speaks"
  local v=$m/internal/version flags
  flags="-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean"
  flags+=" -X $m/pkg/lint/rules.k8sVersionMajor=1 -X $m/pkg/lint/rules.k8sVersionMinor=$minor"
  flags+=" -X $m/pkg/chartutil.k8sVersionMajor=1 -X $m/pkg/chartutil.k8sVersionMinor=$minor"
  build_module helm "$src_dir/helm" "$m" "$HELM_VERSION" -ldflags "$flags" -- "$m/cmd/helm"
  install_from "$src_dir/helm/out" "$bin_dir" helm
  write_stamp helm "$key"
}

# --- offline pause image ------------------------------------------------------------------------
# A static pause binary in a one-layer OCI image archive (uncompressed blobs), named $PAUSE_IMAGE so
# containerd's CRI finds its sandbox image locally and never pulls.
build_pause() {
  local src=$here/pause/pause.c
  local key="pause $PAUSE_VERSION $(sha256sum "$src" | cut -d' ' -f1) $PAUSE_IMAGE"
  local archive=$peers_dir/images/pause.tar
  is_current pause "$key" "$bin_dir/pause" "$archive" && return 0
  local work=$src_dir/pause
  fresh_dir "$work"
  timed pause "$PAUSE_VERSION" pack_pause_image "$src" "$work"
  install_from "$work" "$bin_dir" pause
  install_from "$work" "$peers_dir/images" pause.tar
  write_stamp pause "$key"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# Stores a file as a content-addressed blob and prints its digest.
add_blob() { # layout-dir file
  local digest
  digest=$(sha256_of "$2")
  mv "$2" "$1/blobs/sha256/$digest"
  echo "$digest"
}

pack_pause_image() { # source work-dir
  local src=$1 work=$2
  gcc -Os -static -Wall -Werror -o "$work/pause" "$src"
  strip "$work/pause"
  local layout=$work/layout rootfs=$work/rootfs
  mkdir -p "$layout/blobs/sha256" "$rootfs"
  install -m 0755 "$work/pause" "$rootfs/pause"
  # Reproducible layer: fixed owner, mtime and order.
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -C "$rootfs" -cf "$work/layer.tar" pause
  local layer_size layer
  layer_size=$(size_of "$work/layer.tar")
  layer=$(add_blob "$layout" "$work/layer.tar")
  printf '%s' "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/pause\"],\"User\":\"65535:65535\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$layer\"]}}" \
    >"$work/config.json"
  local config_size config
  config_size=$(size_of "$work/config.json")
  config=$(add_blob "$layout" "$work/config.json")
  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$layer\",\"size\":$layer_size}]}" \
    >"$work/manifest.json"
  local manifest_size manifest
  manifest_size=$(size_of "$work/manifest.json")
  manifest=$(add_blob "$layout" "$work/manifest.json")
  printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest\",\"size\":$manifest_size,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"annotations\":{\"io.containerd.image.name\":\"$PAUSE_IMAGE\",\"org.opencontainers.image.ref.name\":\"${PAUSE_IMAGE##*:}\"}}]}" \
    >"$layout/index.json"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -C "$layout" -cf "$work/pause.tar" \
    oci-layout index.json blobs
}

# --- main ---------------------------------------------------------------------------------------
main() {
  local wanted=("$@") p
  ((${#wanted[@]} > 0)) || wanted=("${all_peers[@]}")
  for p in "${wanted[@]}"; do
    declare -F "build_$p" >/dev/null || die "unknown peer '$p' (known: ${all_peers[*]})"
  done
  ensure_debian_packages
  command -v go >/dev/null || die "go is not on PATH"
  # One build at a time per cache folder, even when several test runs ask at once.
  exec 9>"$peers_dir/.lock"
  flock 9
  # Keep the requested order, but cnitool first: it is the quickest and most wanted.
  local ordered=() q
  for q in "${all_peers[@]}"; do
    for p in "${wanted[@]}"; do [[ $p == "$q" ]] && { ordered+=("$q"); break; }; done
  done
  for p in "${ordered[@]}"; do
    [[ $p == kube || $p == kube-control || $p == kubelet ]] && kube_wanted+=("$p")
  done
  for p in "${ordered[@]}"; do "build_$p"; done
  echo "PEERS_DIR=$peers_dir"
}

main "$@"
