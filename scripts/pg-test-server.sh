#!/usr/bin/env bash
# pg-test-server.sh runs a throwaway PostgreSQL (Debian's package) for the tests
# that need one: the store suite on PostgreSQL, the end-to-end suite and the
# multi-process test.
#
#   scripts/pg-test-server.sh install   apt-get install postgresql when missing
#   scripts/pg-test-server.sh start     start one on a free port; prints export lines:
#                                       eval "$(scripts/pg-test-server.sh start)"
#   scripts/pg-test-server.sh stop DIR  stop the one started in DIR
#
# The server listens on 127.0.0.1 and a unix socket in its own directory, with
# fsync off (a crash loses a test database, nothing else). initdb refuses to run
# as root, so as root it runs as the postgres user.
set -euo pipefail

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$d" ]; then echo "PostgreSQL not installed; run $0 install" >&2; return 1; fi
  echo "$d"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  install)
    if bindir >/dev/null 2>&1; then echo "PostgreSQL present: $(bindir)" >&2; exit 0; fi
    echo "installing PostgreSQL from Debian" >&2
    if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
    ;;
  start)
    bin=$(bindir)
    dir=$(mktemp -d /tmp/diffute-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >&2 || { cat "$dir/server.log" >&2; exit 1; }
    echo "export DIFFUTE_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
    echo "export DIFFUTE_TEST_PG_DIR='$dir'"
    ;;
  stop)
    dir=${2:?usage: $0 stop DIR}
    as_pg "$(bindir)/pg_ctl" -D "$dir/data" -m immediate stop >&2 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 install|start|stop DIR" >&2
    exit 2
    ;;
esac
