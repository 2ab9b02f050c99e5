#!/usr/bin/env bash
# Install the Debian packages the test suite needs that a fresh machine may lack, and make sure
# the database servers the tests use are running. Harmless when everything is already there.
set -euo pipefail

packages=(unixodbc odbc-mariadb odbc-postgresql chromium chromium-driver systemd util-linux
          samba samba-ad-dc winbind slapd ldap-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # The directory tests start their own Samba DC and slapd on 127.0.0.1; the packages' system
  # services must not start (slapd would take port 389 that Samba's DC needs).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL and MariaDB run on the development and CI machines; start them if they stopped.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 1 30); do
    mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break
    sleep 1
  done
fi
