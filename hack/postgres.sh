#!/usr/bin/env bash
# Runs the throwaway PostgreSQL that DB-mode tests and kongsim share.
#
#   hack/postgres.sh install  install Debian's postgresql if missing (the local
#                             process cluster's postgres image runs its binaries)
#   hack/postgres.sh start    install Debian's postgresql if missing, create the
#                             cluster once, start it, ensure role/db kong/kong
#   hack/postgres.sh stop     stop it (no-op when stopped)
#   hack/postgres.sh status   exit 0 when running, 3 when stopped
#   hack/postgres.sh env      print KONG_PG_* exports (eval "$(hack/postgres.sh env)")
#   hack/postgres.sh dsn      print a DSN for the kong role and database
#
# The server listens on 127.0.0.1 only, on a fixed non-default port so it never
# meets a system PostgreSQL. Durability is switched off: this database holds
# test data only, and speed matters more than surviving a power cut.
#
# Environment:
#   KONDUCTOR_PG_PORT      port (default 54329)
#   KONDUCTOR_PG_PASSWORD  password of role kong (default kong)
#   KONDUCTOR_PG_DIR       where the cluster lives (default below)
#   KONDUCTOR_CACHE        cache root; the cluster goes to $KONDUCTOR_CACHE/postgres
#
# Without either directory variable the cluster lives in
# $HOME/.cache/konductor/postgres, except as root: the server runs as the
# postgres user, which cannot enter root's private home, so root's cluster
# lives in /var/tmp/konductor/postgres.
set -euo pipefail
umask 022 # the server user must be able to enter the directories made here

readonly PORT="${KONDUCTOR_PG_PORT:-54329}"
readonly PASSWORD="${KONDUCTOR_PG_PASSWORD:-kong}"
readonly HOST=127.0.0.1
readonly ROLE=kong
readonly DATABASE=kong
# The password goes into a URL unescaped.
[[ "$PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]] || { echo "postgres: KONDUCTOR_PG_PASSWORD may hold only A-Z a-z 0-9 . _ ~ -" >&2; exit 1; }

if [[ -n "${KONDUCTOR_PG_DIR:-}" ]]; then
	DIR="$KONDUCTOR_PG_DIR"
elif [[ -n "${KONDUCTOR_CACHE:-}" ]]; then
	DIR="$KONDUCTOR_CACHE/postgres"
elif [[ "$(id -u)" == 0 ]]; then
	DIR=/var/tmp/konductor/postgres
else
	DIR="${HOME:?HOME is not set}/.cache/konductor/postgres"
fi
readonly DIR DATA="$DIR/data" RUN="$DIR/run" LOG="$DIR/postgres.log"

say() { echo "postgres: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# The server refuses to run as root, so root hands it to the postgres user.
if [[ "$(id -u)" == 0 ]]; then
	SERVER_USER=postgres
	as_server() { runuser -u postgres -- "$@"; }
else
	SERVER_USER="$(id -un)"
	as_server() { "$@"; }
fi

bindir() {
	local dir
	dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
	if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
		echo "$dir"
	fi
}

apt_install() {
	local sudo=()
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null || die "PostgreSQL is not installed and installing needs root: apt-get install -y postgresql"
		sudo=(sudo -n)
	fi
	local log
	log="$(mktemp)"
	# Refresh the package lists only when they are missing or the install
	# fails with them, so a warm machine never waits for the network.
	if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
		"${sudo[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
	fi
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >"$log" 2>&1; then
		"${sudo[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >"$log" 2>&1 ||
			{ cat "$log" >&2; die "apt-get install postgresql failed"; }
	fi
	rm -f "$log"
}

ensure_installed() {
	if [[ -z "$(bindir)" ]]; then
		say "installing Debian's postgresql with apt-get (once)"
		apt_install
		[[ -n "$(bindir)" ]] || die "postgresql installed but no server binaries under /usr/lib/postgresql/*/bin"
	fi
	BIN="$(bindir)"
	id -u "$SERVER_USER" >/dev/null 2>&1 || die "user $SERVER_USER does not exist (it comes with Debian's postgresql package)"
}

# pid_alive reports whether the pid file names a live postmaster of this data
# directory. A pid file left by a crash can name a pid that was since reused
# by an unrelated process, so the process's command line must match too.
pid_alive() {
	local pid
	[[ -f "$DATA/postmaster.pid" ]] || return 1
	pid="$(head -n1 "$DATA/postmaster.pid" 2>/dev/null)" || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[[ -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DATA "
}

remove_stale_pid() {
	if [[ -f "$DATA/postmaster.pid" ]] && ! pid_alive; then
		say "removing stale pid file left by a server that is gone"
		rm -f "$DATA/postmaster.pid" "$RUN/.s.PGSQL.$PORT.lock"
	fi
}

init_cluster() {
	[[ -f "$DATA/PG_VERSION" ]] && return 0
	say "creating a cluster in $DATA"
	rm -rf "$DATA.tmp"
	mkdir -p "$DATA.tmp" "$RUN"
	chown "$SERVER_USER" "$DATA.tmp" "$RUN"
	chmod 700 "$DATA.tmp"
	# initdb into a temporary directory and rename, so an interrupted
	# initdb never leaves a half-made cluster behind.
	if ! as_server "$BIN/initdb" -D "$DATA.tmp" -U "$SERVER_USER" -E UTF8 --no-locale --no-sync \
		--auth-local=peer --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1; then
		cat "$DIR/initdb.log" >&2
		die "initdb failed"
	fi
	cat >>"$DATA.tmp/postgresql.conf" <<-'EOF'

		# konductor test settings: throwaway data, many short-lived test databases.
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		max_connections = 300
		log_min_messages = warning
		log_connections = off
	EOF
	mv "$DATA.tmp" "$DATA"
}

psql_admin() {
	as_server "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U "$SERVER_USER" -d postgres "$@"
}

ensure_role() {
	# CREATEDB lets tests make a fresh database each without superuser rights.
	psql_admin -v pw="$PASSWORD" >/dev/null <<-'EOF'
		SELECT format('CREATE ROLE kong LOGIN CREATEDB PASSWORD %L', :'pw')
		  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kong') \gexec
		SELECT format('ALTER ROLE kong LOGIN CREATEDB PASSWORD %L', :'pw') \gexec
		SELECT 'CREATE DATABASE kong OWNER kong'
		  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kong') \gexec
	EOF
}

# check_reachable fails early when the server user could not walk down to
# its data directory, before anything is created.
check_reachable() {
	local d="$DIR"
	while [[ ! -e "$d" ]]; do d="$(dirname "$d")"; done
	as_server test -x "$d" 2>/dev/null ||
		die "user $SERVER_USER cannot enter $d; set KONDUCTOR_PG_DIR to a directory it can reach"
}

start() {
	ensure_installed
	[[ -f "$DATA/PG_VERSION" ]] || check_reachable
	mkdir -p "$DIR"
	exec 9>"$DIR/.lock"
	# Parallel test packages may all ask at once. The server must not
	# inherit fd 9, or it would hold the lock for its whole life.
	flock 9
	init_cluster
	if pid_alive; then
		local running_port
		running_port="$(sed -n 4p "$DATA/postmaster.pid")"
		[[ "$running_port" == "$PORT" ]] ||
			die "already running on port $running_port, not $PORT; run $0 stop first"
		say "already running on $HOST:$PORT"
		ensure_role
		return 0
	fi
	remove_stale_pid
	mkdir -p "$RUN"
	chown "$SERVER_USER" "$RUN"
	touch "$LOG"
	chown "$SERVER_USER" "$LOG"
	local began=$SECONDS
	if ! as_server "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -s \
		-o "-c listen_addresses=$HOST -p $PORT -k $RUN" start >/dev/null 2>&1 9>&-; then
		tail -n 20 "$LOG" >&2
		die "server did not start (log: $LOG)"
	fi
	ensure_role
	say "started on $HOST:$PORT in $((SECONDS - began))s (data: $DATA)"
}

stop() {
	[[ -d "$DATA" ]] || { say "not running (no cluster in $DATA)"; return 0; }
	mkdir -p "$DIR"
	exec 9>"$DIR/.lock"
	flock 9
	if ! pid_alive; then
		remove_stale_pid
		say "not running"
		return 0
	fi
	ensure_installed
	as_server "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 -s stop >/dev/null || die "stop failed (log: $LOG)"
	say "stopped"
}

status() {
	if pid_alive; then
		say "running on $HOST:$PORT (pid $(head -n1 "$DATA/postmaster.pid"), data $DATA)"
		return 0
	fi
	say "stopped (data $DATA)"
	return 3
}

case "${1:-}" in
install) ensure_installed ;;
start) start ;;
stop) stop ;;
status) status ;;
env)
	cat <<-EOF
		export KONG_PG_HOST=$HOST
		export KONG_PG_PORT=$PORT
		export KONG_PG_USER=$ROLE
		export KONG_PG_PASSWORD=$PASSWORD
		export KONG_PG_DATABASE=$DATABASE
	EOF
	;;
dsn) echo "postgres://$ROLE:$PASSWORD@$HOST:$PORT/$DATABASE?sslmode=disable" ;;
*)
	echo "usage: $0 install|start|stop|status|env|dsn" >&2
	exit 2
	;;
esac
