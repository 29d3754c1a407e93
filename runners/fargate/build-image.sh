#!/usr/bin/env bash
# Build a connector's container image with Podman.
#
#   runners/fargate/build-image.sh <connector-binary> <image-tag> [base-image]
#
# With no base image, and no registry reachable (as on the CI machines), it first builds
# `localhost/connector-base:host`: FROM scratch plus the shared libraries the binary links
# (copied from this host), the host's CA certificates, and a `nonroot` user 65532 — the
# same shape as distroless/cc. Pass gcr.io/distroless/cc-debian12:nonroot (the Dockerfile's
# default) where a registry is reachable.
set -euo pipefail
binary=${1:?usage: build-image.sh <connector-binary> <image-tag> [base-image]}
tag=${2:?usage: build-image.sh <connector-binary> <image-tag> [base-image]}
base=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$binary" ] || { echo "error: $binary is not an executable file; build the connector first (cargo build --release -p <connector>)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$base" ]; then
  base=localhost/connector-base:host
  root="$work/base/rootfs"
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  chmod 1777 "$root/tmp"
  # The dynamic loader and every library the binary needs, at the same paths.
  for lib in $(ldd "$binary" | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  chown 65532:65532 "$root/home/nonroot"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\nUSER 65532:65532\n' > "$work/base/Containerfile"
  podman build --quiet -t "$base" -f "$work/base/Containerfile" "$work/base" >/dev/null
fi

mkdir -p "$work/ctx"
cp -L "$binary" "$work/ctx/connector"
# Debug info is for the build host, not the image (a debug build is ~650 MB with it).
strip --strip-debug "$work/ctx/connector" 2>/dev/null || true
podman build --quiet --build-arg "BASE=$base" -t "$tag" -f "$here/image/Dockerfile" "$work/ctx" >/dev/null
echo "$tag"
