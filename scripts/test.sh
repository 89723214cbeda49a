#!/usr/bin/env bash
# The test command: setup, lint (sqlfluff, ruff), types (mypy), dependency audit, then the whole pytest suite against real
# Postgres, Redis, dbt, HTTP and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== lint: sqlfluff"
# the dbt templater compiles against the profile's database: point it at one that always exists
PRICECAT_PGDATABASE="${PRICECAT_LINT_PGDATABASE:-postgres}" sqlfluff lint models macros tests/dbt
echo "== lint: ruff"
ruff check pricecat api flows tests bench
echo "== types: mypy (strict on api/, flows/ and pricecat/)"
mypy api flows pricecat
echo "== web: src/api.gen.ts is generated from the current OpenAPI document (api/schemas.py)"
(cd web && npm run --silent check:api >/dev/null) || {
    echo "web/src/api.gen.ts is stale: run (cd web && npm run gen:api) and commit it" >&2
    exit 1
}
echo "== audit: pip-audit over requirements.lock"
python scripts/audit.py
echo "== pytest"
pytest "$@"
