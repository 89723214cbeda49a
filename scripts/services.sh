#!/usr/bin/env bash
# Start local Postgres and Redis if they are not answering (CI and fresh machines).
set -euo pipefail
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "services: starting Postgres"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
for _ in $(seq 1 60); do
    if pg_isready -h 127.0.0.1 -p 5432 -q && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "services: Postgres or Redis did not come up" >&2
exit 1
