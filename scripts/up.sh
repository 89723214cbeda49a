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
export API_DATABASE_URL="${API_DATABASE_URL:-postgresql://pricecat_api@127.0.0.1:5432/pricecat}"
exec pricecat serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WORKERS:-2}"
