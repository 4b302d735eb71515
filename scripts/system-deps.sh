#!/usr/bin/env bash
# System packages: Open3D loads libusb and libgomp; the browser tests drive Chromium;
# nginx is the front proxy.
# Installs them with apt-get when missing and allowed; otherwise says what to install.
set -euo pipefail
missing=()
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so' || missing+=(libusb-1.0-0)
ldconfig -p 2>/dev/null | grep -q 'libgomp.so' || missing+=(libgomp1)
# Debian's Chromium for the browser tests (never a downloaded browser); npm for three.js.
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(npm)
# nginx: the production front proxy (deploy/nginx/), run by the slow-client test and benchmark.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx-light)
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "Please install these system packages first: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
