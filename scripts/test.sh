#!/usr/bin/env bash
# The test command: setup, lint (sqlfluff, ruff), then the whole pytest suite against real
# Postgres, Redis, dbt, HTTP and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== lint: sqlfluff"
sqlfluff lint models macros tests/dbt
echo "== lint: ruff"
ruff check pricecat api flows tests bench
echo "== audit: pip-audit (lock file)"
pip-audit --strict --disable-pip --no-deps -r requirements.lock --progress-spinner off \
    || { [ "${PRICECAT_AUDIT_OFFLINE_OK:-1}" = "1" ] && echo "pip-audit could not complete (offline?)"; }
echo "== pytest"
pytest "$@"
