# Database servers for the tests, as a CI service step would provide them: installed from
# Debian's packages when missing, started on 127.0.0.1 only, in a temporary folder, stopped on
# exit. Sourced by .ci/run; a developer can source it too (`source .ci/databases.sh &&
# start_postgres && start_mariadb`) and get CUTOVER_TEST_PG_URL and CUTOVER_TEST_MYSQL_URL exported;
# `stop_databases` stops both and removes their folders.

pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    return 1
}

start_postgres() {
    if ! pg_bin >/dev/null; then
        echo "PostgreSQL is not installed: installing Debian's package"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    local bin port data as
    bin=$(pg_bin)
    port=${CUTOVER_TEST_PG_PORT:-55432}
    data=$(mktemp -d /tmp/cutover-pg.XXXXXX)
    # PostgreSQL refuses to run as root: as root, run it as the postgres user.
    as=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$data"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$data/db" -U postgres -A trust >"$data/initdb.log" 2>&1 \
        || { cat "$data/initdb.log"; return 1; }
    "${as[@]}" "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $data" start >/dev/null \
        || { cat "$data/server.log"; return 1; }
    export CUTOVER_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    CUTOVER_PG_STOP="${as[*]} $bin/pg_ctl -D $data/db -m fast stop"
    CUTOVER_PG_DATA=$data
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_databases() {
    if [ -n "${CUTOVER_PG_STOP:-}" ]; then
        $CUTOVER_PG_STOP >/dev/null 2>&1 || true
        rm -rf "$CUTOVER_PG_DATA"
        unset CUTOVER_PG_STOP
    fi
    if [ -n "${CUTOVER_MYSQL_PID:-}" ]; then
        kill "$CUTOVER_MYSQL_PID" 2>/dev/null && wait "$CUTOVER_MYSQL_PID" 2>/dev/null
        rm -rf "$CUTOVER_MYSQL_DATA"
        unset CUTOVER_MYSQL_PID
    fi
}

start_mariadb() {
    if [ ! -x /usr/sbin/mariadbd ]; then
        echo "MariaDB is not installed: installing Debian's package"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    fi
    local port data user i
    port=${CUTOVER_TEST_MYSQL_PORT:-53306}
    data=$(mktemp -d /tmp/cutover-mariadb.XXXXXX)
    user=$(id -un)
    # Like PostgreSQL, MariaDB is run as its own user rather than root.
    if [ "$(id -u)" = 0 ]; then
        user=mysql
        chown mysql "$data"
    fi
    mariadb-install-db --no-defaults --user="$user" --datadir="$data/db" \
        --auth-root-authentication-method=normal >"$data/install.log" 2>&1 \
        || { cat "$data/install.log"; return 1; }
    /usr/sbin/mariadbd --no-defaults --user="$user" --datadir="$data/db" --bind-address=127.0.0.1 \
        --port="$port" --socket="$data/mysqld.sock" --pid-file="$data/mysqld.pid" \
        --log-error="$data/server.log" >"$data/server.out" 2>&1 &
    CUTOVER_MYSQL_PID=$!
    CUTOVER_MYSQL_DATA=$data
    for i in $(seq 1 60); do
        if mariadb-admin --no-defaults -h 127.0.0.1 -P "$port" -u root ping >/dev/null 2>&1; then
            export CUTOVER_TEST_MYSQL_URL="mysql://root@127.0.0.1:$port/mysql"
            echo "MariaDB $(/usr/sbin/mariadbd --version | awk '{print $3}' | cut -d- -f1) on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.5
    done
    cat "$data/server.log"
    return 1
}
