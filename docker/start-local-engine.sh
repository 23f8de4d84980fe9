#!/usr/bin/env bash
# Start a local Docker engine for the DockerLauncher tests and make the offline base image they build on.
#
# What it does (each step is skipped when already done):
#   1. installs Debian's docker.io and debootstrap (apt) if dockerd is missing;
#   2. starts dockerd in the background (no iptables, no bridge: containers run with --network none),
#      logging to /tmp/edugraph-dockerd.log;
#   3. debootstraps a minimal Debian bookworm (it has python3.11) and `docker import`s it as
#      $EDUGRAPH_TEST_BASE_IMAGE (default edugraph-test-base:bookworm) - no registry needed.
#
# Needs root. The tests never run this themselves; they skip when no engine answers.
# Usage: sudo docker/start-local-engine.sh
set -euo pipefail

BASE_IMAGE="${EDUGRAPH_TEST_BASE_IMAGE:-edugraph-test-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/edugraph-dockerd.log}"

if [ "$(id -u)" != 0 ]; then
    echo "start-local-engine.sh: needs root" >&2
    exit 1
fi

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    echo "== installing docker.io and debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "== starting dockerd (log: $DOCKERD_LOG)"
    # --iptables=false --bridge=none: works inside unprivileged-network sandboxes; containers use --network none.
    nohup dockerd --iptables=false --ip6tables=false --bridge=none >"$DOCKERD_LOG" 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see $DOCKERD_LOG" >&2; tail -20 "$DOCKERD_LOG" >&2; exit 1; }
fi

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "== base image $BASE_IMAGE already present"
else
    echo "== debootstrapping Debian bookworm into $BASE_IMAGE"
    ROOTFS="$(mktemp -d /tmp/edugraph-rootfs.XXXXXX)"
    trap 'rm -rf "$ROOTFS"' EXIT
    debootstrap --variant=minbase --include=python3,python-is-python3,ca-certificates \
        bookworm "$ROOTFS" "$MIRROR" >/tmp/edugraph-debootstrap.log 2>&1 \
        || { tail -20 /tmp/edugraph-debootstrap.log >&2; exit 1; }
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    echo "== imported $BASE_IMAGE"
fi
docker image inspect --format '{{.Id}} {{.Size}}' "$BASE_IMAGE"
