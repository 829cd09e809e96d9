#!/usr/bin/env bash
# Installs what the tests need beyond Python packages: Debian's PostgreSQL
# server (the tests start their own throwaway cluster on a loopback port).
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing Debian's postgresql for the database tests" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    # The package starts a cluster of its own; the tests do not need it.
    $SUDO service postgresql stop >/dev/null 2>&1 || true
fi
