#!/usr/bin/env bash
# Installs what the tests need beyond Python packages: Debian's PostgreSQL
# server (the tests start their own throwaway cluster on a loopback port) and
# Debian's chromium (the browser tests drive it headless with Playwright; no
# browser is downloaded by Playwright itself).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]} for the tests" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
        # The package starts a cluster of its own; the tests do not need it.
        $SUDO service postgresql stop >/dev/null 2>&1 || true
    fi
fi
