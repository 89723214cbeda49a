#!/usr/bin/env bash
# Run the whole thing on a fresh machine, as production runs it: setup -> seed 2.08M rows (once)
# -> migrate -> a first refresh (build, test, publish) -> Prefect server (UI printed) + the
# scheduled refresh every minute (a ~1 s no-op when nothing is new) + a scrape simulator (SIMULATE_EVERY seconds, 0 = off)
# -> API + web UI on http://127.0.0.1:8000/. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
pricecat migrate --no-indexes
pricecat seed --if-empty
pricecat migrate
pricecat refresh

run_dir="$PWD/.run"
mkdir -p "$run_dir"
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all EXIT INT TERM

# Prefect server: the schedule, run history and logs (its own SQLite database under .run/)
export PREFECT_HOME="$run_dir/prefect"
prefect_port="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="http://127.0.0.1:${prefect_port}/api"
prefect server start --host 127.0.0.1 --port "$prefect_port" >"$run_dir/prefect-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
    curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
    sleep 1
done
curl -fsS "$PREFECT_API_URL/health" >/dev/null || { echo "up: Prefect server did not start (see $run_dir/prefect-server.log)" >&2; exit 1; }
echo "up: Prefect UI on http://127.0.0.1:${prefect_port}/ (refresh every minute; incremental, no-op when nothing is new)"
pricecat schedule >"$run_dir/schedule.log" 2>&1 &
pids+=($!)

if [ "${SIMULATE_EVERY:-300}" != "0" ]; then
    echo "up: simulated scraper appends a cycle every ${SIMULATE_EVERY:-300} s (SIMULATE_EVERY=0 turns it off)"
    pricecat simulate-scraper --every "${SIMULATE_EVERY:-300}" >"$run_dir/simulate.log" 2>&1 &
    pids+=($!)
fi

# the API connects as the read-only role pricecat_api (created by `pricecat migrate`)
if [ -z "${API_DATABASE_URL:-}" ]; then
    API_DATABASE_URL="$(python -c 'import os; from pricecat.config import API_ROLE, DEFAULT_DATABASE_URL, with_user; print(with_user(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, API_ROLE))')"
    export API_DATABASE_URL
fi
echo "up: API + web UI on http://${HOST:-127.0.0.1}:${PORT:-8000}/ (logs of the rest: $run_dir)"
pricecat serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --workers "${WORKERS:-2}"
