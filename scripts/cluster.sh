#!/usr/bin/env bash
# pricecat past one machine, on loopback: a Postgres streaming replica of the primary, N API
# instances reading the replica, nginx balancing them (with a 1 s micro-cache), one Redis, a
# Prefect server and a process worker running the refresh deployment against the primary.
#
#   bash scripts/cluster.sh up               # start whatever is not running (idempotent)
#   bash scripts/cluster.sh status [--json]  # one line / one JSON object per component
#   bash scripts/cluster.sh down             # stop exactly what `up` started, drop the slot
#
# State (pidfiles, logs, the replica's data directory, nginx config) lives in $CLUSTER_DIR
# (default .cluster/, gitignored). The primary on 127.0.0.1:5432 is never started or stopped
# here; Redis on CLUSTER_REDIS_PORT is started only when nothing answers there, and `down` stops
# it only if `up` started it. docs/OPERATIONS.md ("Cluster") describes the topology.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-$REPO/.cluster}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PRIMARY_HOST=127.0.0.1
PRIMARY_PORT="${CLUSTER_PRIMARY_PORT:-5432}"
DB_NAME="${CLUSTER_DATABASE:-pricecat}"
REPLICA_PORT="${CLUSTER_REPLICA_PORT:-5433}"
SLOT="${CLUSTER_REPLICATION_SLOT:-pricecat_cluster_replica}"
REDIS_PORT="${CLUSTER_REDIS_PORT:-6380}"
HTTP_PORT="${CLUSTER_HTTP_PORT:-8080}"
NOCACHE_PORT="${CLUSTER_NOCACHE_PORT:-}"      # optional: the same upstreams without micro-cache
INSTANCES="${CLUSTER_API_INSTANCES:-2}"
API_WORKERS="${CLUSTER_API_WORKERS:-1}"
PREFECT_PORT="${CLUSTER_PREFECT_PORT:-4210}"
WORK_POOL="${CLUSTER_WORK_POOL:-pricecat-refresh}"
MICRO_CACHE="${CLUSTER_MICRO_CACHE:-1}"
PREFECT="${CLUSTER_PREFECT:-1}"                # 0: no Prefect server/worker (the fault tests)

RUN="$CLUSTER_DIR/run"          # pidfiles
LOGS="$CLUSTER_DIR/logs"
REPLICA_DIR="$CLUSTER_DIR/replica"
PG_SOCKETS="$CLUSTER_DIR/pg-sockets"
NGINX_DIR="$CLUSTER_DIR/nginx"
# the micro-cache's files (CLUSTER_NGINX_CACHE_DIR: e.g. a tmpfs directory)
NGINX_CACHE_DIR="${CLUSTER_NGINX_CACHE_DIR:-$NGINX_DIR/cache}"
# how often nginx asks every API instance for its data generation (seconds)
GEN_POLL="${CLUSTER_GENERATION_POLL_SECONDS:-0.25}"
# after a publish: how long at most nginx may answer a key from the previous build's entry while
# one background request fills it (0 = no hold: every key turns over at once), after how many
# seconds without a request that needed the previous build the hold ends, and how many fills
# run at once (deploy/nginx/micro-cache-http.conf)
PUBLISH_HOLD="${CLUSTER_PUBLISH_HOLD_SECONDS:-180}"
PUBLISH_HOLD_IDLE="${CLUSTER_PUBLISH_HOLD_IDLE_SECONDS:-5}"
PUBLISH_FILLS="${CLUSTER_PUBLISH_FILLS:-16}"
VENV_BIN="$REPO/.venv/bin"
export PATH="$VENV_BIN:$PATH"

PRIMARY_URL="postgresql://postgres@$PRIMARY_HOST:$PRIMARY_PORT/$DB_NAME"
API_REPLICA_URL="postgresql://pricecat_api@127.0.0.1:$REPLICA_PORT/$DB_NAME"
API_PRIMARY_URL="postgresql://pricecat_api@$PRIMARY_HOST:$PRIMARY_PORT/$DB_NAME"
REDIS_URL_CLUSTER="redis://127.0.0.1:$REDIS_PORT/0"
PREFECT_URL="http://127.0.0.1:$PREFECT_PORT/api"

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_primary() { psql -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres -X -Atq "$@"; }

# --- pidfiles ------------------------------------------------------------------------------------
pidfile() { echo "$RUN/$1.pid"; }
pid_of() { local f; f="$(pidfile "$1")"; [ -s "$f" ] && cat "$f" || true; }
alive() { local p; p="$(pid_of "$1")"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# start NAME LOGFILE CMD...: a new session (so `down` can stop its whole process group)
start_bg() {
    local name="$1" logfile="$2"; shift 2
    setsid "$@" >>"$logfile" 2>&1 < /dev/null &
    echo $! > "$(pidfile "$name")"
}

# stop NAME: TERM the process group, wait, then KILL; removes the pidfile
stop_bg() {
    local name="$1" pid
    pid="$(pid_of "$name")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        log "stopped $name (pid $pid)"
    fi
    rm -f "$(pidfile "$name")"
}

wait_http() {  # URL SECONDS
    for _ in $(seq 1 $(( $2 * 4 ))); do
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.25
    done
    return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# API instance ports are chosen once (free at the first `up`) and kept in $CLUSTER_DIR/api-ports
api_ports() {
    local f="$CLUSTER_DIR/api-ports"
    if [ ! -s "$f" ] || [ "$(wc -l < "$f")" -ne "$INSTANCES" ]; then
        : > "$f"
        for _ in $(seq 1 "$INSTANCES"); do free_port >> "$f"; done
    fi
    cat "$f"
}

# --- primary ---------------------------------------------------------------------------------------
prepare_primary() {
    pg_isready -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -q || die "the primary on $PRIMARY_HOST:$PRIMARY_PORT is down (bash scripts/services.sh)"
    # replication connections match only `replication` lines in pg_hba.conf
    local hba
    hba="$(psql_primary -c 'show hba_file')"
    if ! grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$hba"; then
        log "adding a loopback replication line to $hba"
        printf '%s\n' "host    replication     all             127.0.0.1/32            trust" >> "$hba"
        psql_primary -c 'select pg_reload_conf()' > /dev/null
    fi
    [ "$(psql_primary -c 'show wal_level')" != minimal ] || die "the primary needs wal_level=replica"
    # the database exists and has the API's read-only role (pricecat migrate is idempotent)
    if [ -z "$(psql_primary -d postgres -c "select 1 from pg_database where datname = '$DB_NAME'")" ]; then
        psql_primary -d postgres -c "create database \"$DB_NAME\""
    fi
    DATABASE_URL="$PRIMARY_URL" pricecat migrate > "$LOGS/migrate.log" 2>&1 || die "pricecat migrate failed ($LOGS/migrate.log)"
}

# --- replica ---------------------------------------------------------------------------------------
replica_running() { as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" status > /dev/null 2>&1; }

make_replica() {
    log "base backup of the primary into $REPLICA_DIR (slot $SLOT)"
    rm -rf "$REPLICA_DIR"
    install -d -m 700 -o postgres -g postgres "$REPLICA_DIR" 2>/dev/null || install -d -m 700 "$REPLICA_DIR"
    if [ -n "$(psql_primary -c "select 1 from pg_replication_slots where slot_name = '$SLOT' and not active")" ]; then
        psql_primary -c "select pg_drop_replication_slot('$SLOT')" > /dev/null
    fi
    as_postgres "$PG_BIN/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres \
        -D "$REPLICA_DIR" -R -X stream -C -S "$SLOT" --checkpoint=fast
    # a hot standby needs these at least as high as on the primary
    local settings
    settings="$(psql_primary -c "select string_agg(name || ' = ' || setting, E'\n') from pg_settings where name in ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction')")"
    as_postgres tee "$REPLICA_DIR/postgresql.conf" > /dev/null <<CONF
# written by scripts/cluster.sh: a hot standby of $PRIMARY_HOST:$PRIMARY_PORT
port = $REPLICA_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKETS'
hba_file = '$REPLICA_DIR/pg_hba.conf'
hot_standby = on
# replayed schema renames/drops cancel conflicting reads only after this long
max_standby_streaming_delay = 30s
hot_standby_feedback = on
shared_buffers = 128MB
$settings
CONF
    as_postgres tee "$REPLICA_DIR/pg_hba.conf" > /dev/null <<HBA
local all all trust
host all all 127.0.0.1/32 trust
HBA
}

start_replica() {
    install -d -m 755 -o postgres -g postgres "$PG_SOCKETS" 2>/dev/null || install -d "$PG_SOCKETS"
    if replica_running; then return 0; fi
    if [ ! -f "$REPLICA_DIR/standby.signal" ] \
        || [ -z "$(psql_primary -c "select 1 from pg_replication_slots where slot_name = '$SLOT'")" ]; then
        make_replica
    fi
    log "starting the replica on 127.0.0.1:$REPLICA_PORT"
    touch "$LOGS/replica.log"; chown postgres "$LOGS/replica.log" 2>/dev/null || true
    as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -l "$LOGS/replica.log" -w -t 120 start > /dev/null \
        || die "the replica did not start ($LOGS/replica.log)"
    head -n1 "$REPLICA_DIR/postmaster.pid" > "$(pidfile replica)"
}

# --- redis, API instances, nginx -------------------------------------------------------------------
start_redis() {
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping > /dev/null 2>&1; then return 0; fi
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    start_bg redis "$LOGS/redis.log" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$CLUSTER_DIR"
    for _ in $(seq 1 40); do redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1 && return 0; sleep 0.25; done
    die "Redis did not start ($LOGS/redis.log)"
}

start_api() {
    local i=0 port
    for port in $(api_ports); do
        i=$((i + 1))
        alive "api-$i" && continue
        log "starting api-$i on 127.0.0.1:$port ($API_WORKERS workers, reading the replica)"
        start_bg "api-$i" "$LOGS/api-$i.log" env \
            DATABASE_URL="$PRIMARY_URL" \
            API_DATABASE_URL="$API_REPLICA_URL" \
            API_DATABASE_FALLBACK_URL="$API_PRIMARY_URL" \
            REDIS_URL="$REDIS_URL_CLUSTER" \
            CACHE_NAMESPACE="pricecat:$DB_NAME" \
            API_DB_POOL_MAX="${API_DB_POOL_MAX:-8}" \
            pricecat serve --host 127.0.0.1 --port "$port" --workers "$API_WORKERS"
    done
    i=0
    for port in $(api_ports); do
        i=$((i + 1))
        wait_http "http://127.0.0.1:$port/healthz" 60 || die "api-$i did not come up ($LOGS/api-$i.log)"
    done
}

render_nginx() {
    local out="$NGINX_DIR/nginx.conf" servers="" cache="" cache_http="" user_line="" modules=""
    local lua_instances="" port tmp
    for port in $(api_ports); do
        servers+="        server 127.0.0.1:$port max_fails=1 fail_timeout=2s;"$'\n'
        lua_instances+="{\"127.0.0.1\", $port}, "
    done
    if [ "$MICRO_CACHE" = 1 ]; then
        cache="$REPO/deploy/nginx/micro-cache.conf"
        cache_http="$REPO/deploy/nginx/micro-cache-http.conf"
        # Debian's lua module (libnginx-mod-http-lua; ndk first): the generation poller
        modules="load_module /usr/lib/nginx/modules/ndk_http_module.so;"$'\n'
        modules+="load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
    fi
    [ "$(id -u)" = 0 ] && user_line="user www-data;"
    # Descriptors per worker (worker_rlimit_nofile: the hard limit of the shell that starts
    # nginx, at most 65536): worker_connections (clients + upstream connections) + at most one
    # cache temp file per upstream connection + open_file_cache, which closes its least recently
    # used descriptor when full, so the three together stay within the limit (a publish doubles
    # the files in use, not the descriptors). 256 for logs, listeners and the like.
    local nofile; nofile="$(ulimit -Hn)"
    if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
    local conns=8192; [ "$nofile" -lt 32768 ] && conns=3072
    local ofc_max=$((nofile - 2 * conns - 256))
    [ "$ofc_max" -lt 1000 ] && die "nofile hard limit $nofile leaves no room for the micro-cache's descriptors"
    tmp="$(mktemp)"
    python3 - "$REPO/deploy/nginx/cluster.conf.template" "$tmp" "$cache_http" "$cache" <<PY
import sys
text = open(sys.argv[1]).read()
# the micro-cache's files are read here, not pasted into this script (the Lua holds escapes)
for key, path in {"@CACHE_HTTP@": sys.argv[3], "@CACHE_BLOCK@": sys.argv[4]}.items():
    text = text.replace(key, open(path).read().rstrip("\n") if path else "")
for key, value in {
    "@USER_LINE@": """$user_line""", "@LOAD_MODULES@": """$modules""",
    "@DIR@": "$NGINX_DIR", "@HTTP_PORT@": "$HTTP_PORT",
    "@CACHE_DIR@": "$NGINX_CACHE_DIR",
    "@UPSTREAM_SERVERS@": """${servers%$'\n'}""", "@LUA_INSTANCES@": """${lua_instances%, }""",
    "@POLL_SECONDS@": "$GEN_POLL", "@HOLD_SECONDS@": "$PUBLISH_HOLD", "@HOLD_IDLE_SECONDS@": "$PUBLISH_HOLD_IDLE", "@MAX_FILLS@": "$PUBLISH_FILLS", "@VALID_SECONDS@": "10", "@LOWER_SECONDS@": "10",
    "@NOFILE@": "$nofile", "@WORKER_CONNECTIONS@": "$conns", "@OPEN_FILE_CACHE_MAX@": "$ofc_max",
}.items():
    text = text.replace(key, value)
nocache = "$NOCACHE_PORT"
if nocache:  # the same upstreams without the micro-cache (benchmarks compare both)
    extra = ("    server {\n        listen 127.0.0.1:%s backlog=4096;\n"
             "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n"
             "        proxy_next_upstream error timeout http_502 http_503;\n"
             "        location / { proxy_pass http://pricecat_api; }\n    }\n}\n" % nocache)
    text = text.rstrip().rstrip("}") + extra
open(sys.argv[2], "w").write(text)
PY
    if ! cmp -s "$tmp" "$out"; then mv "$tmp" "$out"; echo changed; else rm -f "$tmp"; fi
}

start_nginx() {
    if ! { command -v nginx > /dev/null || [ -x /usr/sbin/nginx ]; } \
        || [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
        log "installing nginx and its lua module (Debian packages)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-http-lua > /dev/null
    fi
    local nginx_bin; nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
    mkdir -p "$NGINX_DIR"/tmp "$NGINX_CACHE_DIR"
    [ -f "$NGINX_DIR/static-bench.json" ] || echo '{}' > "$NGINX_DIR/static-bench.json"
    [ "$(id -u)" = 0 ] && chown -R www-data "$NGINX_DIR/tmp" "$NGINX_CACHE_DIR"
    local changed; changed="$(render_nginx)"
    "$nginx_bin" -t -q -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" || die "nginx config test failed"
    if [ -s "$NGINX_DIR/nginx.pid" ] && kill -0 "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null; then
        cp "$NGINX_DIR/nginx.pid" "$(pidfile nginx)"
        if [ -n "$changed" ]; then log "reloading nginx"; "$nginx_bin" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -s reload; sleep 0.5; fi
        return 0
    fi
    log "starting nginx on 127.0.0.1:$HTTP_PORT"
    "$nginx_bin" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf"
    for _ in $(seq 1 20); do [ -s "$NGINX_DIR/nginx.pid" ] && break; sleep 0.1; done
    cp "$NGINX_DIR/nginx.pid" "$(pidfile nginx)"
}

# --- Prefect ---------------------------------------------------------------------------------------
start_prefect() {
    export PREFECT_HOME="$CLUSTER_DIR/prefect" PREFECT_API_URL="$PREFECT_URL"
    export PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_ENABLED=false
    mkdir -p "$PREFECT_HOME"
    if ! alive prefect-server; then
        log "starting the Prefect server on 127.0.0.1:$PREFECT_PORT (SQLite in $PREFECT_HOME)"
        start_bg prefect-server "$LOGS/prefect-server.log" \
            prefect server start --host 127.0.0.1 --port "$PREFECT_PORT"
    fi
    wait_http "$PREFECT_URL/health" 120 || die "the Prefect server did not come up ($LOGS/prefect-server.log)"
    if ! alive dbt-server; then
        # a warm dbt (pricecat/dbt_server.py): each flow run is a fresh process, so dbt's imports
        # are kept warm beside the worker instead of inside it
        log "starting a dbt fork server for the worker's flow runs ($RUN/dbt.sock)"
        start_bg dbt-server "$LOGS/dbt-server.log" pricecat dbt-server --socket "$RUN/dbt.sock"
    fi
    if ! alive prefect-worker; then
        log "deploying refresh-catalog to work pool $WORK_POOL"
        DATABASE_URL="$PRIMARY_URL" pricecat schedule --pool "$WORK_POOL" > "$LOGS/deploy.log" 2>&1 \
            || die "deploying the refresh failed ($LOGS/deploy.log)"
        log "starting a process worker in $WORK_POOL"
        # flow runs are subprocesses of the worker: they inherit DATABASE_URL (the primary) and
        # DBT_FORK_SERVER (while it does not answer, a run starts dbt as a plain subprocess)
        start_bg prefect-worker "$LOGS/prefect-worker.log" env \
            DATABASE_URL="$PRIMARY_URL" REDIS_URL="$REDIS_URL_CLUSTER" \
            DBT_FORK_SERVER="$RUN/dbt.sock" \
            prefect worker start --pool "$WORK_POOL" --type process --name "cluster-worker"
    fi
    # `up` returns once the worker polls its pool (status says healthy from then on)
    local i
    for i in $(seq 1 60); do
        worker_online && break
        sleep 1
    done
    worker_online || die "the Prefect worker did not come online ($LOGS/prefect-worker.log)"
}

worker_online() {
    alive prefect-worker && curl -fsS --max-time 2 -X POST -H 'Content-Type: application/json' -d '{}' \
        "$PREFECT_URL/work_pools/$WORK_POOL/workers/filter" 2>/dev/null | grep -q '"status":"ONLINE"'
}

# --- status ----------------------------------------------------------------------------------------
# one "name pid url healthy" line per component
components() {
    local i=0 port ok pid
    ok=false; curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null && ok=true
    echo "nginx $(pid_of nginx) http://127.0.0.1:$HTTP_PORT $ok"
    for port in $( [ -s "$CLUSTER_DIR/api-ports" ] && cat "$CLUSTER_DIR/api-ports"); do
        i=$((i + 1))
        ok=false; curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz" 2>/dev/null && ok=true
        echo "api-$i $(pid_of "api-$i") http://127.0.0.1:$port $ok"
    done
    ok=false
    [ "$(psql -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -X -Atq -c 'select pg_is_in_recovery()' 2>/dev/null)" = t ] && ok=true
    pid=""; [ -f "$REPLICA_DIR/postmaster.pid" ] && pid="$(head -n1 "$REPLICA_DIR/postmaster.pid" 2>/dev/null || true)"
    echo "replica $pid postgresql://127.0.0.1:$REPLICA_PORT/$DB_NAME $ok"
    ok=false; [ "$(psql_primary -c 'select not pg_is_in_recovery()' 2>/dev/null)" = t ] && ok=true
    pid="$(psql_primary -c "select pid from pg_stat_activity where backend_type = 'checkpointer'" 2>/dev/null || true)"
    pid="$(ps -o ppid= -p "${pid:-0}" 2>/dev/null | tr -d ' ' || true)"
    echo "primary $pid postgresql://$PRIMARY_HOST:$PRIMARY_PORT/$DB_NAME $ok"
    ok=false; redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping > /dev/null 2>&1 && ok=true
    echo "redis $(pid_of redis) $REDIS_URL_CLUSTER $ok"
    [ "$PREFECT" = 1 ] || return 0
    ok=false; curl -fsS -o /dev/null --max-time 2 "$PREFECT_URL/health" 2>/dev/null && ok=true
    echo "prefect-server $(pid_of prefect-server) $PREFECT_URL $ok"
    ok=false
    if worker_online; then ok=true; fi
    echo "prefect-worker $(pid_of prefect-worker) $PREFECT_URL/work_pools/$WORK_POOL $ok"
    ok=false; alive dbt-server && [ -S "$RUN/dbt.sock" ] && ok=true
    echo "dbt-server $(pid_of dbt-server) unix://$RUN/dbt.sock $ok"
}

status() {
    if [ "${1:-}" = --json ]; then
        components | python3 -c '
import json, sys
rows = [line.split() for line in sys.stdin if line.strip()]
out = []
for r in rows:
    name, rest = r[0], r[1:]
    pid = int(rest[0]) if len(rest) == 3 and rest[0].isdigit() else None
    out.append({"name": name, "pid": pid, "url": rest[-2], "healthy": rest[-1] == "true"})
print(json.dumps({"components": out}, indent=2))'
    else
        components | awk '{ if (NF == 3) { $4 = $3; $3 = $2; $2 = "-" } printf "%-15s pid %-8s %-8s %s\n", $1, $2, ($4 == "true" ? "healthy" : "DOWN"), $3 }'
    fi
}

# --- up / down -------------------------------------------------------------------------------------
up() {
    mkdir -p "$RUN" "$LOGS"
    prepare_primary
    start_replica
    start_redis
    start_api
    start_nginx
    [ "$PREFECT" = 1 ] && start_prefect
    status
}

down() {
    stop_bg prefect-worker
    stop_bg dbt-server
    stop_bg prefect-server
    if [ -s "$NGINX_DIR/nginx.pid" ] && kill -0 "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null; then
        kill -QUIT "$(cat "$NGINX_DIR/nginx.pid")"
        for _ in $(seq 1 25); do [ -s "$NGINX_DIR/nginx.pid" ] || break; sleep 0.2; done
        log "stopped nginx"
    fi
    rm -f "$(pidfile nginx)"
    local f
    for f in "$RUN"/api-*.pid; do [ -e "$f" ] && stop_bg "$(basename "$f" .pid)"; done
    stop_bg redis  # only if `up` started it (there is a pidfile)
    if [ -d "$REPLICA_DIR" ] && replica_running; then
        as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -m fast -w stop > /dev/null
        log "stopped the replica"
    fi
    rm -f "$(pidfile replica)"
    # the slot would hold WAL on the primary forever; the next `up` makes a new base backup
    if [ -n "$(psql_primary -c "select 1 from pg_replication_slots where slot_name = '$SLOT'" 2>/dev/null)" ]; then
        psql_primary -c "select pg_drop_replication_slot('$SLOT')" > /dev/null && log "dropped slot $SLOT"
    fi
    rm -rf "$REPLICA_DIR"
}

case "${1:-}" in
    up) up ;;
    status) status "${2:-}" ;;
    down) down ;;
    *) echo "usage: $0 up | status [--json] | down" >&2; exit 2 ;;
esac
