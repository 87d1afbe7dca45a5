#!/usr/bin/env bash
# Builds local/debian:bookworm-slim from Debian's mirror with debootstrap + docker import.
#
# Why not `FROM debian:bookworm-slim`: no container registry is reachable from the machines this project is
# built and tested on, so every image starts from a root filesystem we make ourselves. The image is tagged
# with a hash of this recipe; a rebuild is skipped when an image with the same hash already exists.
set -euo pipefail

IMAGE="${AIRFLEET_BASE_IMAGE:-local/debian:bookworm-slim}"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Packages every project image needs; kept short because each one adds to every image.
INCLUDE="ca-certificates,tini,procps"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
recipe_hash="$( { cat "$here/build.sh"; echo "$SUITE $MIRROR $INCLUDE"; } | sha256sum | cut -c1-16)"

if ! docker info >/dev/null 2>&1; then
  echo "images/base: the Docker engine is not reachable (docker info failed). Start dockerd (bash .ci/run does) and retry." >&2
  exit 1
fi

existing="$(docker image inspect --format '{{ index .Config.Labels "airfleet.recipe" }}' "$IMAGE" 2>/dev/null || true)"
if [[ "$existing" == "$recipe_hash" ]]; then
  echo "images/base: $IMAGE is up to date (recipe $recipe_hash), skipping"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "images/base: debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }

start=$(date +%s)
rootfs="$(mktemp -d /tmp/airfleet-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "images/base: debootstrap --variant=minbase $SUITE from $MIRROR (about a minute)"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" > "$rootfs.log" 2>&1 || {
  echo "images/base: debootstrap failed; last lines of its log:" >&2; tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# Slim the image the way the official -slim images do: no apt lists, caches, docs or man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
echo "deb $MIRROR $SUITE main" > "$rootfs/etc/apt/sources.list"

tar -C "$rootfs" -c . | docker import \
  --change "LABEL airfleet.recipe=$recipe_hash" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  - "$IMAGE" >/dev/null
echo "images/base: built $IMAGE (recipe $recipe_hash) in $(( $(date +%s) - start ))s"
