#!/usr/bin/env bash
# Idempotent setup for a fresh machine: services, Python venv from the lock file, web build,
# Debian's Chromium for the browser tests. Every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

if [ ! -x .venv/bin/python ]; then
    python3.11 -m venv .venv
fi
stamp=.venv/.pricecat-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -c requirements.lock -e '.[api,refresh,dev]'
    touch "$stamp"
fi

if [ -f web/package.json ]; then
    if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules ]; then
        (cd web && npm ci --no-audit --no-fund --loglevel=error)
    fi
    (cd web && npm run --silent build)
fi

if [ "${PRICECAT_SKIP_BROWSER:-0}" != "1" ] && [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing Debian's chromium (browser tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v wrk >/dev/null 2>&1 && [ "${PRICECAT_SKIP_WRK:-0}" != "1" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || true
fi
