#!/usr/bin/env bash
# Real peers for the test suite: project-local Python venvs (.venv with the pinned
# clients/services of scripts/requirements.txt, .venv-nova with those of
# scripts/requirements-nova.txt), real Keystone + Glance + Nova API + Cinder API +
# Neutron server under gunicorn, and a throwaway PostgreSQL cluster (the ledger's
# PostgreSQL tests, and Neutron's database), with their state in .work/peers/ (all
# git-ignored). Nova, Cinder and Neutron are API only: nothing gets built or wired.
#
#   scripts/peers.sh venv      create/refresh .venv and .venv-nova (each skipped when its stamp
#                              matches); install Debian's chromium if missing (the report test)
#   scripts/peers.sh start     fresh PostgreSQL + Keystone + Glance + Nova + Cinder + Neutron, wait
#                              until ready, seed them (peers_seed.py, peers_seed_nova.py)
#   scripts/peers.sh stop      stop what `start` started, by PID (process group)
#   scripts/peers.sh pg-start  only the PostgreSQL cluster (fresh); pg-stop stops it
#   scripts/peers.sh env       print the `export` lines the tests read
#
# Ports: FEDSITE_KEYSTONE_PORT (15000), FEDSITE_GLANCE_PORT (19292), FEDSITE_PG_PORT (15432),
# FEDSITE_NOVA_PORT (18774), FEDSITE_CINDER_PORT (18776), FEDSITE_NEUTRON_PORT (19696).
# PostgreSQL refuses to run as root: as root the cluster runs as FEDSITE_PG_OS_USER
# (fedsite-pg, created if missing). Its superuser is `fedsite`, trust auth, 127.0.0.1 only.
# Readiness timeout: FEDSITE_PEERS_TIMEOUT seconds (180).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
WORK="$ROOT/.work/peers"
REQ="$ROOT/scripts/requirements.txt"
CONSTRAINTS="$ROOT/scripts/constraints.txt"
VENV_NOVA="$ROOT/.venv-nova"
REQ_NOVA="$ROOT/scripts/requirements-nova.txt"
CONSTRAINTS_NOVA="$ROOT/scripts/constraints-nova.txt"
PYTHON="${PYTHON:-python3}"
KS_PORT="${FEDSITE_KEYSTONE_PORT:-15000}"
GL_PORT="${FEDSITE_GLANCE_PORT:-19292}"
NV_PORT="${FEDSITE_NOVA_PORT:-18774}"
CD_PORT="${FEDSITE_CINDER_PORT:-18776}"
NT_PORT="${FEDSITE_NEUTRON_PORT:-19696}"
TIMEOUT="${FEDSITE_PEERS_TIMEOUT:-180}"
PG_PORT="${FEDSITE_PG_PORT:-15432}"
PG_OS_USER="${FEDSITE_PG_OS_USER:-fedsite-pg}"
PG_URL="postgresql://fedsite@127.0.0.1:$PG_PORT/postgres"
ADMIN_PASSWORD=secret
# The user Nova, Cinder and Neutron check tokens with (keystonemiddleware): role `service` on
# project `service`, password as admin's, made by peers_seed_nova.py. keystonemiddleware 13
# wants that role in the service token Nova sends along with a user's token to Neutron.
SERVICE_USER=fedsite-service
SERVICE_PROJECT=service
KS_URL="http://127.0.0.1:$KS_PORT/v3"
GL_URL="http://127.0.0.1:$GL_PORT"
NV_URL="http://127.0.0.1:$NV_PORT/v2.1"
CD_URL="http://127.0.0.1:$CD_PORT/v3"
NT_URL="http://127.0.0.1:$NT_PORT"

log() { echo "peers: $*" >&2; }

# quiet LOGFILE CMD...: run CMD with its output in LOGFILE; show it on failure.
quiet() {
  local logfile=$1; shift
  if ! "$@" >> "$logfile" 2>&1; then
    log "failed: $* ; output:"; tail -n 40 "$logfile" >&2; return 1
  fi
}

# The stamp of a venv: its requirements + constraints + interpreter version. A venv
# whose stamp matches already has everything; anything else is rebuilt from scratch.
venv_stamp() { { cat "$1" "$2"; "$PYTHON" --version 2>&1; } | sha256sum | cut -d' ' -f1; }

# Headless Chromium for the report test (crates/fedsite/tests/it/metrics_report.rs): Debian's
# chromium, installed when missing and we are root. The test fails without it.
ensure_chromium() {
  command -v chromium > /dev/null && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
    log "no chromium: installing Debian's chromium (the report test loads the page in it)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >&2
  else
    log "no chromium on PATH: the report test will fail (apt-get install chromium)"
  fi
}

# uv, from PyPI, installs the big .venv-nova: pip took 1.5-3 minutes for its ~400 MB here
# (one download at a time), uv takes well under one. It byte-compiles too, as pip does: with
# PYTHONDONTWRITEBYTECODE set (as here) an uncompiled nova takes ~12 s to import, every time.
UV_VERSION=0.13.9

# build_venv DIR REQUIREMENTS CONSTRAINTS [uv]: (re)create the venv DIR unless its stamp
# matches; with `uv`, install with uv instead of pip.
build_venv() {
  local dir=$1 req=$2 cons=$3 installer=${4:-pip} want have=""
  want="$(venv_stamp "$req" "$cons")"
  [[ $installer == pip ]] || want+="-$installer"
  [[ -f "$dir/.requirements.stamp" ]] && have="$(cat "$dir/.requirements.stamp")"
  if [[ "$want" == "$have" && -x "$dir/bin/python" ]]; then
    log "venv $dir is up to date"
    return 0
  fi
  log "creating venv $dir ($installer install -r ${req#"$ROOT/"})"
  local t0=$SECONDS
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check --upgrade pip
  if [[ $installer == uv ]]; then
    "$dir/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
    "$dir/bin/uv" pip install -q --compile-bytecode --python "$dir/bin/python" -r "$req" -c "$cons"
  else
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$req" -c "$cons"
  fi
  echo "$want" > "$dir/.requirements.stamp"
  log "venv $dir ready in $((SECONDS - t0)) s"
}

cmd_venv() {
  ensure_chromium
  build_venv "$VENV" "$REQ" "$CONSTRAINTS"
  build_venv "$VENV_NOVA" "$REQ_NOVA" "$CONSTRAINTS_NOVA" uv
}

# wait_http URL NAME PIDFILE: poll until URL answers (any HTTP status < 500).
wait_http() {
  local url=$1 name=$2 pidfile=$3 deadline=$((SECONDS + TIMEOUT)) code
  while ((SECONDS < deadline)); do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "$name died while starting; its logs:"
      tail -n 40 "$WORK"/"$name"/*.log >&2 || true
      return 1
    fi
    code="$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)"
    if [[ "$code" =~ ^[234] ]]; then
      log "$name ready at $url (HTTP $code)"
      return 0
    fi
    sleep 0.3
  done
  log "$name not ready at $url after ${TIMEOUT}s; its logs:"
  tail -n 40 "$WORK"/"$name"/*.log >&2 || true
  return 1
}

# start_gunicorn VENV NAME ENV... -- ARGS...: start VENV's gunicorn in its own session,
# so that `stop` can end it and its workers as one process group.
start_gunicorn() {
  local venv=$1 name=$2; shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  (cd "$WORK/$name" && exec env "${envs[@]}" setsid "$venv/bin/gunicorn" --chdir "$WORK/$name" \
      --workers 1 --threads 4 --timeout 300 "$@" > "$WORK/$name/gunicorn.log" 2>&1 < /dev/null) &
  echo $! > "$WORK/$name.pid"
}

# --- PostgreSQL (the ledger's PostgreSQL backend tests) ---

# The directory of the PostgreSQL binaries (initdb, pg_ctl, postgres); installs
# Debian's postgresql when none is found and we are root.
pg_bindir() {
  local d
  if command -v initdb > /dev/null && command -v pg_ctl > /dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"; return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
  done
  if [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
    log "no PostgreSQL binaries: installing Debian's postgresql"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } >&2
    for d in /usr/lib/postgresql/*/bin; do
      [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
    done
  fi
  log "no PostgreSQL binaries (initdb, pg_ctl) on PATH nor in /usr/lib/postgresql/*/bin"
  return 1
}

# as_pg CMD...: run CMD as the cluster's owner (an unprivileged user when we are root).
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

# Remove the last cluster's directory (only ever .work/peers/pg or /tmp/fedsite-pg.*).
pg_forget() {
  local old
  [[ -f "$WORK/pg.dir" ]] || return 0
  old="$(cat "$WORK/pg.dir")"
  [[ "$old" == "$WORK/pg" || "$old" == /tmp/fedsite-pg.* ]] && rm -rf "$old"
  rm -f "$WORK/pg.dir"
}

cmd_pg_start() {
  cmd_pg_stop
  local t0 bindir dir sock
  t0=$(date +%s%N)
  bindir="$(pg_bindir)"
  if (echo > "/dev/tcp/127.0.0.1/$PG_PORT") 2> /dev/null; then
    log "port $PG_PORT is already in use by something else; pick another with FEDSITE_PG_PORT"
    return 1
  fi
  if [[ $(id -u) == 0 ]] && ! id -u "$PG_OS_USER" > /dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$PG_OS_USER" 2> /dev/null || id -u "$PG_OS_USER" > /dev/null
    log "created system user $PG_OS_USER (PostgreSQL refuses to run as root)"
  fi
  # The cluster lives in .work/peers/pg unless its owner cannot reach it there (a
  # checkout under a private home directory): then in a private directory under /tmp.
  dir="$WORK/pg"
  pg_forget
  rm -rf "$dir"
  mkdir -p "$dir"
  [[ $(id -u) == 0 ]] && chown "$PG_OS_USER:" "$dir"
  if ! as_pg test -w "$dir"; then
    rm -rf "$dir"
    dir="$(mktemp -d /tmp/fedsite-pg.XXXXXX)"
    [[ $(id -u) == 0 ]] && chown "$PG_OS_USER:" "$dir"
    log "$WORK is not reachable by $PG_OS_USER: cluster in $dir"
  fi
  echo "$dir" > "$WORK/pg.dir"
  as_pg mkdir -p "$dir/sock"
  sock="$dir/sock"
  ((${#sock} < 90)) || sock=""   # a unix socket path must stay under 107 bytes
  quiet "$WORK/pg-initdb.log" as_pg "$bindir/initdb" -D "$dir/data" -U fedsite --auth=trust \
    --encoding=UTF8 --locale=C --no-sync
  # A throwaway test cluster: no durability (fsync off), loopback TCP only.
  if ! as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$TIMEOUT" \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k '$sock' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start > "$WORK/pg-ctl.log" 2>&1; then
    log "PostgreSQL did not start; its log:"
    tail -n 40 "$dir/postgres.log" "$WORK/pg-ctl.log" >&2 || true
    return 1
  fi
  log "PostgreSQL ready at $PG_URL in $((($(date +%s%N) - t0) / 1000000)) ms (cluster in $dir)"
}

cmd_pg_stop() {
  [[ -f "$WORK/pg.dir" ]] || return 0
  local dir pid bindir
  dir="$(cat "$WORK/pg.dir")"
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  pid="$(head -n 1 "$dir/data/postmaster.pid")"
  kill -0 "$pid" 2> /dev/null || return 0
  bindir="$(pg_bindir)"
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop > /dev/null 2>&1 || true
  if kill -0 "$pid" 2> /dev/null; then
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2> /dev/null || true
  fi
  log "stopped PostgreSQL (pid $pid)"
}

# The set-up jobs `start` runs in the background (databases, then API processes). Should
# `start` fail, it still waits for them before exiting, so that every server they start
# has its PID file when `stop` runs.
BACKGROUND=()
wait_background() {
  local pid
  for pid in "${BACKGROUND[@]}"; do wait "$pid" 2> /dev/null || true; done
}

cmd_start() {
  [[ -x "$VENV/bin/gunicorn" && -x "$VENV_NOVA/bin/gunicorn" ]] || { log "no venv: run scripts/peers.sh venv"; return 1; }
  trap wait_background EXIT
  cmd_stop
  local port
  for port in "$KS_PORT" "$GL_PORT" "$NV_PORT" "$CD_PORT" "$NT_PORT"; do
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then
      log "port $port is already in use by something else; pick other ports with FEDSITE_KEYSTONE_PORT / FEDSITE_GLANCE_PORT / FEDSITE_NOVA_PORT / FEDSITE_CINDER_PORT / FEDSITE_NEUTRON_PORT"
      return 1
    fi
  done
  pg_forget
  rm -rf "$WORK"
  mkdir -p "$WORK"
  cmd_pg_start
  # Neutron's schema takes the longest (hundreds of migrations): made meanwhile.
  neutron_db > "$WORK/neutron-db.log" 2>&1 &
  local neutron_db_pid=$!
  BACKGROUND+=("$neutron_db_pid")
  mkdir -p "$WORK/keystone/etc/fernet-keys" "$WORK/keystone/etc/credential-keys" \
    "$WORK/glance/conf" "$WORK/glance/images" "$WORK/glance/staging" "$WORK/glance/tasks"
  local t0=$SECONDS ks="$WORK/keystone" gl="$WORK/glance" me grp
  me="$(id -un)"; grp="$(id -gn)"

  # --- Keystone (SQLite, fernet) ---
  cat > "$ks/etc/keystone.conf" <<EOF
[DEFAULT]
log_file = $ks/keystone.log
[database]
connection = sqlite:///$ks/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $ks/etc/fernet-keys/
[fernet_receipts]
key_repository = $ks/etc/fernet-keys/
[credential]
key_repository = $ks/etc/credential-keys/
EOF
  cat > "$ks/ks_wsgi.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]  # keystone parses argv with oslo.config; hide gunicorn's flags
from keystone.wsgi.api import application  # noqa: E402,F401
EOF
  local km=(quiet "$ks/manage.log" "$VENV/bin/keystone-manage" --config-file "$ks/etc/keystone.conf")
  "${km[@]}" db_sync
  "${km[@]}" fernet_setup --keystone-user "$me" --keystone-group "$grp"
  "${km[@]}" credential_setup --keystone-user "$me" --keystone-group "$grp"
  "${km[@]}" bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
    --bootstrap-admin-url "$KS_URL/" --bootstrap-internal-url "$KS_URL/" \
    --bootstrap-public-url "$KS_URL/" --bootstrap-region-id RegionOne
  start_gunicorn "$VENV" keystone OS_KEYSTONE_CONFIG_FILES="$ks/etc/keystone.conf" -- \
    --bind "127.0.0.1:$KS_PORT" ks_wsgi:application

  # --- Glance (SQLite, file store, keystone auth) ---
  cp "$VENV/etc/glance/glance-api-paste.ini" "$gl/conf/"
  cat > "$gl/conf/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $GL_PORT
workers = 1
worker_self_reference_url = $GL_URL
log_file = $gl/glance-api.log
enabled_backends = fs:file
[database]
connection = sqlite:///$gl/glance.db
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $gl/images/
[os_glance_staging_store]
filesystem_store_datadir = $gl/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $gl/tasks/
[paste_deploy]
flavor = keystone
config_file = $gl/conf/glance-api-paste.ini
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$KS_PORT
auth_url = http://127.0.0.1:$KS_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = admin
username = admin
password = $ADMIN_PASSWORD
[oslo_policy]
enforce_new_defaults = true
EOF
  quiet "$gl/manage.log" "$VENV/bin/glance-manage" --config-file "$gl/conf/glance-api.conf" db_sync
  start_gunicorn "$VENV" glance OS_GLANCE_CONFIG_DIR="$gl/conf" -- \
    --bind "127.0.0.1:$GL_PORT" glance.wsgi.api:application

  # Nova's and Cinder's databases meanwhile too; their APIs start when they are made.
  start_nova_cinder > "$WORK/nova-cinder.log" 2>&1 &
  local nova_cinder_pid=$!
  BACKGROUND+=("$nova_cinder_pid")

  wait_http "$KS_URL" keystone "$WORK/keystone.pid"
  wait_http "$GL_URL/" glance "$WORK/glance.pid"
  "$VENV/bin/python" "$ROOT/scripts/peers_seed.py" "$KS_URL" "$GL_URL" "$ADMIN_PASSWORD"
  log "Keystone + Glance up in $((SECONDS - t0)) s (state in $WORK)"
  if ! wait "$nova_cinder_pid"; then
    log "making Nova's or Cinder's database failed:"; tail -n 40 "$WORK/nova-cinder.log" >&2; return 1
  fi
  grep '^peers:' "$WORK/nova-cinder.log" >&2 || true
  wait_http "http://127.0.0.1:$NV_PORT/" nova "$WORK/nova.pid"
  wait_http "http://127.0.0.1:$CD_PORT/" cinder "$WORK/cinder.pid"
  if ! wait "$neutron_db_pid"; then
    log "making Neutron's database failed:"; tail -n 40 "$WORK/neutron-db.log" >&2; return 1
  fi
  start_neutron
  wait_http "$NT_URL/" neutron "$WORK/neutron.pid"
  local t1=$SECONDS
  # The ids it made (servers, flavors, volumes, projects by name): .work/peers/nova-seed.json.
  if ! "$VENV_NOVA/bin/python" "$ROOT/scripts/peers_seed_nova.py" \
      --keystone "$KS_URL" --password "$ADMIN_PASSWORD" --nova "$NV_URL" --cinder "$CD_URL" --neutron "$NT_URL" \
      --service-user "$SERVICE_USER" --service-project "$SERVICE_PROJECT" \
      --nova-config "$WORK/nova/conf/nova.conf" --cinder-config "$WORK/cinder/conf/cinder.conf" \
      > "$WORK/nova-seed.json" 2> "$WORK/nova/seed.log"; then
    log "seeding Nova + Cinder failed:"; tail -n 40 "$WORK/nova/seed.log" >&2; return 1
  fi
  grep '^peers:' "$WORK/nova/seed.log" >&2 || true
  log "seeded Neutron + Nova + Cinder in $((SECONDS - t1)) s; all peers up in $((SECONDS - t0)) s (state in $WORK)"
}

# auth_block USER PROJECT: password auth on the real Keystone, for a config section.
auth_block() {
  cat <<EOF
auth_url = http://127.0.0.1:$KS_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = $2
username = $1
password = $ADMIN_PASSWORD
EOF
}

# keystonemiddleware's section: tokens are checked with the real Keystone, as the service user.
authtoken() {
  echo "[keystone_authtoken]"
  echo "www_authenticate_uri = http://127.0.0.1:$KS_PORT"
  auth_block "$SERVICE_USER" "$SERVICE_PROJECT"
}

# --- Neutron server (API only: ML2 without mechanism drivers, no agents, fake://) ---
# Its database is `neutron` on the throwaway PostgreSQL (its migrations are written for
# MySQL/PostgreSQL). Ports are created but never bound; floating IPs are allocated and
# associated through a router, none of it wired.
neutron_db() {
  local nt="$WORK/neutron" bindir
  mkdir -p "$nt/conf/plugins/ml2" "$nt/state" "$nt/locks"
  cp "$VENV_NOVA/etc/neutron/api-paste.ini" "$nt/conf/"
  cat > "$nt/conf/neutron.conf" <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = fake://
state_path = $nt/state
log_file = $nt/neutron.log
api_paste_config = $nt/conf/api-paste.ini
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
[database]
connection = postgresql+psycopg2://fedsite@127.0.0.1:$PG_PORT/neutron
[oslo_concurrency]
lock_path = $nt/locks
$(authtoken)
EOF
  cat > "$nt/conf/plugins/ml2/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,local
tenant_network_types = local
mechanism_drivers =
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
EOF
  bindir="$(pg_bindir)"
  "$bindir/createdb" -h 127.0.0.1 -p "$PG_PORT" -U fedsite neutron
  local m=("$VENV_NOVA/bin/neutron-db-manage" --config-file "$nt/conf/neutron.conf"
    --config-file "$nt/conf/plugins/ml2/ml2_conf.ini")
  # Neutron 29's d553edeb540f (2025.2 expand, "tag_case_sensitive") is MySQL only
  # (ALTER TABLE tags CONVERT TO CHARACTER SET utf8mb4) and fails on PostgreSQL, whose
  # text comparison is case-sensitive already: it is stamped, not run.
  "${m[@]}" upgrade ad80a9f07c5c
  "${m[@]}" stamp d553edeb540f
  "${m[@]}" upgrade heads
  cat > "$nt/nt_wsgi.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]  # neutron parses argv with oslo.config; hide gunicorn's flags
from neutron.wsgi.api import application  # noqa: E402,F401
EOF
}

start_neutron() {
  start_gunicorn "$VENV_NOVA" neutron OS_NEUTRON_CONFIG_DIR="$WORK/neutron/conf" \
    OS_NEUTRON_CONFIG_FILES="neutron.conf;plugins/ml2/ml2_conf.ini" -- \
    --bind "127.0.0.1:$NT_PORT" nt_wsgi:application
}

# --- Nova API + Cinder API (API only: SQLite, transport fake://, Keystone auth) ---
# Makes their databases, then starts the API processes (in the background of `start`,
# which waits for them and seeds them with peers_seed_nova.py once Keystone answers).
start_nova_cinder() {
  local nv="$WORK/nova" cd="$WORK/cinder" t0=$SECONDS
  mkdir -p "$nv/conf" "$nv/state" "$nv/locks" "$cd/conf" "$cd/state" "$cd/locks"
  cp "$VENV_NOVA/etc/nova/api-paste.ini" "$nv/conf/"
  # [neutron]: servers/detail asks Neutron for the servers' ports (security groups).
  cat > "$nv/conf/nova.conf" <<EOF
[DEFAULT]
transport_url = fake://
state_path = $nv/state
log_file = $nv/nova-api.log
compute_driver = fake.SmallFakeDriver
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $nv/conf/api-paste.ini
[api_database]
connection = sqlite:///$nv/nova_api.db
[database]
connection = sqlite:///$nv/nova_cell1.db
[oslo_concurrency]
lock_path = $nv/locks
[placement]
auth_type = none
endpoint_override = http://127.0.0.1:1
[neutron]
endpoint_override = $NT_URL
$(auth_block admin admin)
[glance]
api_servers = $GL_URL
[cinder]
auth_type = none
$(authtoken)
EOF
  cat > "$nv/nv_wsgi.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]  # nova parses argv with oslo.config; hide gunicorn's flags
from nova.wsgi.osapi_compute import application  # noqa: E402,F401
EOF
  # nova-manage api_db sync; cell_v2 map_cell0; db sync; cell_v2 create_cell --name cell1,
  # in one process (each nova-manage spends seconds importing nova).
  quiet "$nv/manage.log" "$VENV_NOVA/bin/python" - "$nv/conf/nova.conf" \
    "sqlite:///$nv/nova_cell0.db" "sqlite:///$nv/nova_cell1.db" <<'EOF'
import sys
from nova import config, objects
from nova.cmd import manage
from oslo_log import log as logging
conf, cell0, cell1 = sys.argv[1:4]
config.parse_args(["nova-manage", "--config-file", conf])
logging.setup(manage.CONF, "nova")
objects.register_all()
cells = manage.CellV2Commands()
for step, run in (("api_db sync", lambda: manage.ApiDbCommands().sync()),
                  ("cell_v2 map_cell0", lambda: cells.map_cell0(database_connection=cell0)),
                  ("db sync", lambda: manage.DbCommands().sync()),
                  ("cell_v2 create_cell", lambda: cells.create_cell(
                      name="cell1", database_connection=cell1, transport_url="fake://"))):
    if run() not in (None, 0):
        sys.exit(f"nova-manage {step} failed")
EOF
  start_gunicorn "$VENV_NOVA" nova OS_NOVA_CONFIG_DIR="$nv/conf" -- \
    --bind "127.0.0.1:$NV_PORT" nv_wsgi:application

  cp "$VENV_NOVA/etc/cinder/api-paste.ini" "$cd/conf/"
  cat > "$cd/conf/cinder.conf" <<EOF
[DEFAULT]
auth_strategy = keystone
transport_url = fake://
state_path = $cd/state
log_file = $cd/cinder-api.log
api_paste_config = $cd/conf/api-paste.ini
enabled_backends =
[database]
connection = sqlite:///$cd/cinder.db
[oslo_concurrency]
lock_path = $cd/locks
$(authtoken)
EOF
  cat > "$cd/cd_wsgi.py" <<EOF
import sys
sys.argv = [sys.argv[0], '--config-file', '$cd/conf/cinder.conf']  # cinder parses argv
from cinder.wsgi.api import application  # noqa: E402,F401
EOF
  quiet "$cd/manage.log" "$VENV_NOVA/bin/cinder-manage" --config-file "$cd/conf/cinder.conf" db sync
  start_gunicorn "$VENV_NOVA" cinder -- --bind "127.0.0.1:$CD_PORT" cd_wsgi:application

  log "Nova + Cinder databases made in $((SECONDS - t0)) s"
}

cmd_stop() {
  local name pid
  for name in neutron cinder nova glance keystone; do
    [[ -f "$WORK/$name.pid" ]] || continue
    pid="$(cat "$WORK/$name.pid")"
    rm -f "$WORK/$name.pid"
    kill -0 "$pid" 2>/dev/null || continue
    # gunicorn was started with setsid: its PID is its process group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  done
  cmd_pg_stop
}

cmd_env() {
  cat <<EOF
export FEDSITE_VENV=$VENV
export FEDSITE_REAL_KEYSTONE=$KS_URL
export FEDSITE_REAL_GLANCE=$GL_URL
export FEDSITE_VENV_NOVA=$VENV_NOVA
export FEDSITE_REAL_NOVA=$NV_URL
export FEDSITE_REAL_CINDER=$CD_URL
export FEDSITE_REAL_NEUTRON=$NT_URL
export FEDSITE_REAL_NOVA_SEED=$WORK/nova-seed.json
export FEDSITE_REAL_ADMIN_PASSWORD=$ADMIN_PASSWORD
export FEDSITE_TEST_PG=$PG_URL
EOF
}

case "${1:-}" in
  venv) cmd_venv ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  pg-start) mkdir -p "$WORK"; cmd_pg_start ;;
  pg-stop) cmd_pg_stop ;;
  env) cmd_env ;;
  *) echo "usage: $0 venv|start|stop|pg-start|pg-stop|env" >&2; exit 2 ;;
esac
