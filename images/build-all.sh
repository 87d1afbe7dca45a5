#!/usr/bin/env bash
# Builds every project image locally, base first. Each image directory holds a Dockerfile and, when it needs
# files from the host (npm or PyPI artifacts fetched here, since containers cannot reach registries over
# HTTPS), a prepare.sh that stages them into the build context first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="${AIRFLEET_IMAGE_TAG:-dev}"

bash "$root/images/base/build.sh"
for dir in "$root"/images/*/; do
  name="$(basename "$dir")"
  [ -f "$dir/Dockerfile" ] || continue
  start=$(date +%s)
  if [ -x "$dir/prepare.sh" ]; then "$dir/prepare.sh"; fi
  echo "images: building local/airfleet-$name:$TAG"
  if ! docker build -q --build-arg "TAG=$TAG" -t "local/airfleet-$name:$TAG" "$dir" >/tmp/airfleet-build-$name.log 2>&1; then
    echo "images: building $name failed; its log:" >&2; cat /tmp/airfleet-build-$name.log >&2; exit 1
  fi
  echo "images: local/airfleet-$name:$TAG ready in $(( $(date +%s) - start ))s"
done
