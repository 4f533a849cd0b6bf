#!/usr/bin/env bash
# Refresh the page's vendored scripts from the npm registry: the page must work with no
# internet, so nothing is ever loaded from a CDN. Records versions, licences and checksums
# in static/vendor/VERSIONS.md. Run after changing a version below; commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."

SOCKET_IO_CLIENT=socket.io-client@4.8.4  # Flask-SocketIO 5.x speaks to 3.x and 4.x clients
UPLOT=uplot@1.6.32                       # a small, fast time-series chart (about 50 KB)

out=static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

fetch() {  # fetch PACKAGE@VERSION -> unpacks into $work/NAME
  local spec=$1 name=${1%@*}
  (cd "$work" && npm pack --silent "$spec" >/dev/null && mkdir "$name" && tar -xzf "$name"-*.tgz -C "$name")
}

fetch "$SOCKET_IO_CLIENT"
cp "$work/socket.io-client/package/dist/socket.io.min.js" "$out/"
cp "$work/socket.io-client/package/LICENSE" "$out/socket.io-client.LICENSE"

fetch "$UPLOT"
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$work/uplot/package/dist/uPlot.min.css" "$out/"
cp "$work/uplot/package/LICENSE" "$out/uplot.LICENSE"

{
  echo "# Vendored front-end files"
  echo
  echo "Refreshed by \`scripts/vendor-assets.sh\` from the npm registry. Do not edit by hand."
  echo
  echo "| package | version | licence | file | sha256 |"
  echo "|---|---|---|---|---|"
  for pkg in socket.io-client uplot; do
    version=$(node -p "require('$work/$pkg/package/package.json').version")
    licence=$(node -p "require('$work/$pkg/package/package.json').license")
    for f in "$out"/*; do
      case "$(basename "$f")" in
        socket.io*|socket.io-client.LICENSE) [ "$pkg" = socket.io-client ] || continue ;;
        uPlot*|uplot.LICENSE) [ "$pkg" = uplot ] || continue ;;
        *) continue ;;
      esac
      echo "| $pkg | $version | $licence | $(basename "$f") | $(sha256sum "$f" | cut -c1-16)… |"
    done
  done
} > "$out/VERSIONS.md"
echo "vendored into $out:"
cat "$out/VERSIONS.md"
