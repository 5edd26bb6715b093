#!/usr/bin/env bash
# Installs and starts what the tests need and a fresh Debian machine lacks: the Rust components,
# Node.js and npm, Python's venv, curl, Chromium for the sign-in pages, HAProxy, and PostgreSQL. What is
# already there (a PostgreSQL answering on 127.0.0.1:5432, say) is used as it is.
set -euo pipefail

apt_install() {
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
command -v curl >/dev/null || apt_install curl
[ -x /usr/bin/chromium ] || apt_install chromium
# The balancer in front of two instances of each service (scripts/instances.sh).
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_install haproxy
command -v psql >/dev/null || apt_install postgresql-client

# PostgreSQL: the one on 127.0.0.1:5432 when it answers; otherwise Debian's, started here. The
# database-fault tests run a cluster of their own, so the server binaries must be there too.
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
  pg_up || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi
