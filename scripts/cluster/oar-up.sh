#!/bin/bash
# A one-node OAR cluster on this machine, for tests and trials: oar-up.sh [up|down] [STATE_DIR]
#
#   scripts/cluster/oar-up.sh /tmp/oar       # prints: OAR up: 2 resources Alive on localhost; submit as seisoar
#   cd <a directory seisoar may write>; runuser -u seisoar -- oarsub -S ./oar_c1.sh
#   scripts/cluster/oar-down.sh /tmp/oar     # or: oar-up.sh down /tmp/oar
#
# Needs root. Installs Debian's OAR 2.5 (oar-server, oar-server-pgsql, oar-node, oar-user,
# oar-user-pgsql) and PostgreSQL with apt-get if missing; no systemd: it starts
#   - a private PostgreSQL cluster in STATE_DIR/pg (user postgres, a free port on 127.0.0.1),
#   - the OAR server (Almighty, /etc/init.d/oar-server) on its database,
#   - the OAR node (its sshd on port 6667, /etc/init.d/oar-node) with ssh keys for user oar,
# declares two resources (core=1, core=2) of host localhost, and creates the submitting
# user (SEISSTORE_OAR_USER, default seisoar: OAR's admission rules refuse root and oar).
# OAR reads only /etc/oar/oar.conf: the script saves it as oar.conf.seisstore-orig and sets
# DB_PORT, the database passwords, LOG_FILE, SCHEDULER_MIN_TIME_BETWEEN_2_CALLS=1 and
# turns off the cpuset job resource manager (cgroups are not there in a container);
# `down` stops everything and puts oar.conf back.  Ports 6666 (server) and 6667 (node sshd)
# are OAR's own: one such cluster per machine.
#
# Exit codes: 0 up, 1 bad usage or environment (not root, no apt-get, a daemon did not start).
set -euo pipefail

usage() { echo "usage: $0 [up|down] [STATE_DIR]" >&2; exit 1; }
action=up
case "${1:-}" in
    up|down) action="$1"; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
esac
[ "$#" -le 1 ] || usage
STATE="${1:-${OAR_UP_STATE:-/tmp/seisstore-oar}}"
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
OAR_USER="${SEISSTORE_OAR_USER:-seisoar}"
CONF=/etc/oar/oar.conf
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"

die() { echo "oar-up: $*" >&2; exit 1; }

stop_pidfile() {   # stop_pidfile FILE: TERM to the process group of the pid in FILE, KILL after 10 s
    local file="$1" pid group
    [ -s "$file" ] || return 0
    pid="$(cat "$file")"
    group="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" || true
    if [ -n "$group" ]; then
        kill -- "-$group" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 -- "-$group" 2>/dev/null || break; sleep 0.1; done
        kill -9 -- "-$group" 2>/dev/null || true
    fi
    rm -f "$file"
}

if [ "$action" = down ]; then
    stop_pidfile /var/run/oar-node_sshd.pid      # the node's sshd (its own process group)
    stop_pidfile /var/run/oar-server.pid         # Almighty and its children (one process group)
    if [ -n "$PG_BIN" ] && [ -s "$STATE/pg/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null 2>&1 || true
    fi
    [ -f "$CONF.seisstore-orig" ] && mv -f "$CONF.seisstore-orig" "$CONF"
    echo "oar-down: stopped OAR and the database of $STATE" >&2
    exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (installs OAR and PostgreSQL, starts their daemons)"
need=(oar-server oar-server-pgsql oar-node oar-user oar-user-pgsql postgresql)
if ! command -v oarsub >/dev/null || ! command -v oar-database >/dev/null || [ ! -x /etc/init.d/oar-node ] \
        || [ -z "$PG_BIN" ]; then
    command -v apt-get >/dev/null || die "OAR is not installed and there is no apt-get to install it"
    echo "oar-up: installing ${need[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    log="${TMPDIR:-/tmp}/oar-up.apt.log"
    apt-get install -y -q --no-install-recommends "${need[@]}" >"$log" 2>&1 || {
        apt-get update -q >>"$log" 2>&1
        apt-get install -y -q --no-install-recommends "${need[@]}" >>"$log" 2>&1
    } || { tail -n 20 "$log" >&2; die "apt-get install ${need[*]} failed"; }
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

"$0" down "$STATE" 2>/dev/null
rm -rf "${STATE:?}"/{pg,pgrun,log}
mkdir -p "$STATE"/{pg,pgrun,log}
chown postgres: "$STATE/pg" "$STATE/pgrun"
chmod 700 "$STATE/pg"
chown oar: "$STATE/log"

# the database: a private cluster, trusted on 127.0.0.1 only
PG_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
runuser -u postgres -- "$PG_BIN/initdb" -D "$STATE/pg" -A trust >"$STATE/log/initdb.log" 2>&1 \
    || { tail -n 5 "$STATE/log/initdb.log" >&2; die "initdb failed"; }
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/pgrun/postgresql.log" -w \
    -o "-p $PG_PORT -k $STATE/pgrun -c listen_addresses=127.0.0.1" start >/dev/null \
    || { tail -n 5 "$STATE/pgrun/postgresql.log" >&2; die "PostgreSQL did not start"; }

# oar.conf: our database, our log, a quick scheduler, no cpuset
[ -f "$CONF.seisstore-orig" ] || cp -p "$CONF" "$CONF.seisstore-orig"
set_conf() {   # set_conf KEY VALUE: replace (or add) KEY="VALUE"
    if grep -qE "^#?$1=" "$CONF"; then
        sed -i -E "0,/^#?$1=.*/s||$1=\"$2\"|" "$CONF"
    else
        echo "$1=\"$2\"" >>"$CONF"
    fi
}
set_conf DB_HOSTNAME 127.0.0.1
set_conf DB_PORT "$PG_PORT"
set_conf DB_BASE_PASSWD oar
set_conf DB_BASE_PASSWD_RO oar_ro
set_conf LOG_FILE "$STATE/log/oar.log"
set_conf SCHEDULER_MIN_TIME_BETWEEN_2_CALLS 1
sed -i -E 's/^(JOB_RESOURCE_MANAGER_PROPERTY_DB_FIELD=)/#\1/' "$CONF"
oar-database --create --db-admin-user=postgres --db-admin-pass=unused -y >"$STATE/log/oar-database.log" 2>&1 \
    || { tail -n 5 "$STATE/log/oar-database.log" >&2; die "oar-database --create failed"; }

# the node: OAR reaches it over ssh (port 6667) as user oar, with a key of its own
OAR_HOME="$(getent passwd oar | cut -d: -f6)"
if [ ! -s "$OAR_HOME/.ssh/id_ed25519" ]; then
    install -d -o oar -g oar -m 700 "$OAR_HOME/.ssh"
    runuser -u oar -- ssh-keygen -q -t ed25519 -N "" -f "$OAR_HOME/.ssh/id_ed25519"
    { printf 'environment="OAR_KEY=1" '; cat "$OAR_HOME/.ssh/id_ed25519.pub"; } >"$OAR_HOME/.ssh/authorized_keys"
    printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile %s/.ssh/known_hosts\n' "$OAR_HOME" \
        >"$OAR_HOME/.ssh/config"
    chown oar: "$OAR_HOME/.ssh/authorized_keys" "$OAR_HOME/.ssh/config"
    chmod 600 "$OAR_HOME/.ssh/authorized_keys"
fi
mkdir -p /run/sshd
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null
/etc/init.d/oar-server start >/dev/null || die "oar-server (Almighty) did not start"
/etc/init.d/oar-node start >/dev/null || die "oar-node (sshd on 6667) did not start"
runuser -u oar -- ssh -p 6667 -o BatchMode=yes localhost true \
    || die "user oar cannot ssh to the node (port 6667)"

# two resources of one host, and the submitting user
oarproperty -a core >/dev/null 2>&1 || true
oarproperty -a cpu >/dev/null 2>&1 || true
for core in 1 2; do
    oarnodesetting -a -h localhost -p "core=$core" -p cpu=1 -p "cpuset=$((core - 1))" >/dev/null
done
id "$OAR_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$OAR_USER"

for _ in $(seq 100); do
    if [ "$(oarnodes -s 2>/dev/null | grep -c Alive)" -ge 2 ]; then
        echo "oar-up: 2 resources Alive on localhost, database on 127.0.0.1:$PG_PORT, state in $STATE;" \
             "submit as $OAR_USER" >&2
        exit 0
    fi
    sleep 0.2
done
oarnodes -s >&2 || true
die "the resources are not Alive after 20 s"
