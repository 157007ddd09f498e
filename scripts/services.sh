#!/usr/bin/env bash
# Makes the session stores keepsake's tests talk to available on loopback: installs memcached,
# Chromium and PHP (for the CodeIgniter app) from Debian's packages when missing, and starts
# PostgreSQL, MariaDB, Redis and memcached when they are not answering. Safe to run again; it
# changes nothing that already works.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    if listening "$port"; then return 0; fi
    sleep 0.5
  done
  echo "services: $name did not start on 127.0.0.1:$port" >&2
  return 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v memcached >/dev/null || missing+=(memcached)
command -v chromium >/dev/null || missing+=(chromium)
# The bench's SQLite peer (connect-sqlite3 → sqlite3) links the system's SQLite (.ci/run).
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
# PHP runs a real CodeIgniter 4 app beside keepsake (test/codeigniter): the CLI and the extensions
# CodeIgniter 4.1.3 requires (curl, intl, mbstring, xml) or its session drivers use.
php_modules=$(php -m 2>/dev/null || true)
for pair in cli:Core curl:curl intl:intl mbstring:mbstring xml:dom redis:redis memcached:memcached \
  pgsql:pgsql mysql:mysqli; do
  grep -qix "${pair#*:}" <<<"$php_modules" || missing+=("php-${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "services: installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! listening 5432; then
  echo "services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
wait_for PostgreSQL 5432

if ! listening 3306; then
  echo "services: starting MariaDB"
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_for MariaDB 3306

if ! listening 6379; then
  echo "services: starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for Redis 6379

if ! listening 11211; then
  echo "services: starting memcached"
  as_root memcached -u "$(id -un)" -l 127.0.0.1 -p 11211 -m 256 -d
fi
wait_for memcached 11211

echo "services: PostgreSQL, MariaDB, Redis and memcached are up"
