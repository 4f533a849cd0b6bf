#!/usr/bin/env bash
# Refresh the page's vendored front-end files from the npm registry.
#
# The page must work on a Pi with no internet, so nothing is ever loaded from a CDN: the
# files live in static/vendor/ and are committed. This script fetches them with `npm pack`
# (the registry's own tarball, checked by npm against its integrity hash) and records the
# exact versions, licences and sha256 sums in static/vendor/VERSIONS.md.
#
#   scripts/vendor-assets.sh           fetch the newest 4.x / 1.x and rewrite static/vendor/
#   scripts/vendor-assets.sh --check   offline: do the files still match VERSIONS.md?
#
# Another version: SOCKET_IO_CLIENT=socket.io-client@4.8.1 scripts/vendor-assets.sh
# (the client must stay on 4.x: Flask-SocketIO 5 speaks Socket.IO protocol v5, clients 3.x/4.x).
set -euo pipefail
cd "$(dirname "$0")/.."

SOCKET_IO_CLIENT=${SOCKET_IO_CLIENT:-socket.io-client@4}
UPLOT=${UPLOT:-uplot@1}

out=static/vendor
versions=$out/VERSIONS.md

if [ "${1:-}" = "--check" ]; then
  # The table's rows are "| package | version | licence | file | sha256 |".
  awk -F' *[|] *' 'length($6) == 64 && $6 ~ /^[0-9a-f]+$/ { print $6 "  " $5 }' "$versions" \
    | (cd "$out" && sha256sum --check --strict)
  exit
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch SPEC DIR: the package's tarball, unpacked into $work/DIR/package/
fetch() {
  mkdir "$work/$2"
  (cd "$work/$2" && npm pack --silent "$1" >/dev/null && tar -xzf ./*.tgz)
}
fetch "$SOCKET_IO_CLIENT" socket.io-client
fetch "$UPLOT" uplot

# Build the new set aside and swap it in whole, so a failed fetch leaves the old files be.
new=$work/vendor
mkdir "$new"
# Rows for VERSIONS.md: package dir, then its files as "source-in-package:name-in-vendor".
rows=()
add() {  # add DIR SOURCE NAME
  cp "$work/$1/package/$2" "$new/$3"
  rows+=("$1:$3")
}
add socket.io-client dist/socket.io.min.js socket.io.min.js
add socket.io-client LICENSE socket.io-client.LICENSE
add uplot dist/uPlot.iife.min.js uPlot.iife.min.js
add uplot dist/uPlot.min.css uPlot.min.css
add uplot LICENSE uplot.LICENSE

field() {  # field DIR KEY: a field of the package's own package.json
  node -p "require(process.argv[1])[process.argv[2]]" "$work/$1/package/package.json" "$2"
}

{
  echo "# Vendored front-end files"
  echo
  echo "Written by \`scripts/vendor-assets.sh\` from the npm registry; do not edit by hand."
  echo "Refresh: \`scripts/vendor-assets.sh\`. Verify (offline): \`scripts/vendor-assets.sh --check\`."
  echo
  echo "| package | version | licence | file | sha256 |"
  echo "|---|---|---|---|---|"
  for row in "${rows[@]}"; do
    pkg=${row%%:*} file=${row#*:}
    sum=$(sha256sum "$new/$file" | cut -d' ' -f1)
    echo "| $(field "$pkg" name) | $(field "$pkg" version) | $(field "$pkg" license) | $file | $sum |"
  done
} > "$new/VERSIONS.md"

mkdir -p "$out"
rm -f "$out"/*
cp "$new"/* "$out/"
cat "$versions"
