#!/usr/bin/env bash
# Installs everything the build, the tests and the tools need, from Debian packages and npm.
# Idempotent: quick and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # build
  cmake ninja-build g++ ccache pkg-config clang libclang-rt-14-dev clang-format-14
  # libraries named by the design
  libcaf-dev libboost-dev libboost-program-options-dev libprotobuf-dev protobuf-compiler
  libssl-dev corosync libcpg-dev libquorum-dev libvotequorum-dev libcmap-dev
  libcorosync-common-dev libibverbs-dev librdmacm-dev doctest-dev libtomlplusplus-dev
  # tests: real third-party clients and tools
  python3 python3-pika python3-pytest amqp-tools nodejs npm iproute2 procps
  # fabric TLS tests make throwaway CAs and certificates with the openssl command
  openssl
  # the inspector: browser test (Debian's chromium, driven by playwright-core)
  # and the /metrics exposition-format parser test
  chromium chromium-driver python3-prometheus-client
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # nodejs may ship npm itself (NodeSource builds); do not fight over /usr/bin/npm.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, pinned by the lock files: the integration tests (amqplib,
# playwright-core without its browser download: Debian's chromium is used)
# and the inspector page (web/: Vite, chart.js, cytoscape; built by CMake).
for dir in test/integration/js web; do
  if [ -f $dir/package.json ]; then
    if [ ! -d $dir/node_modules ] || [ $dir/package.json -nt $dir/node_modules ] || \
       [ $dir/package-lock.json -nt $dir/node_modules ]; then
      echo "install-deps: npm install in $dir"
      (cd $dir && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
         npm install --no-audit --no-fund --silent >/dev/null)
      touch $dir/node_modules
    fi
  fi
done
