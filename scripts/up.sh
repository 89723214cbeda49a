#!/usr/bin/env bash
# Run the whole thing on a fresh machine: setup -> seed 2.08M rows (once) -> migrate ->
# refresh (build, test, publish) -> API + web UI on http://127.0.0.1:8000/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
pricecat migrate --no-indexes
pricecat seed --if-empty
pricecat migrate
pricecat refresh
# the API connects as the read-only role pricecat_api (created by `pricecat migrate`)
if [ -z "${API_DATABASE_URL:-}" ]; then
    API_DATABASE_URL="$(python -c 'import os; from pricecat.config import API_ROLE, DEFAULT_DATABASE_URL, with_user; print(with_user(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, API_ROLE))')"
    export API_DATABASE_URL
fi
exec pricecat serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WORKERS:-2}"
