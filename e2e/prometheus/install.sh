#!/usr/bin/env bash
# Builds a Prometheus server from the module proxy into .tools/, once per version. The end-to-end
# tests scrape the collector with it and evaluate the dashboards' queries. Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" {print $3}' "$here/tool/go.mod")"
bin="$root/.tools/prometheus-$version/prometheus"
if [ ! -x "$bin" ]; then
  echo "building Prometheus $version (several minutes the first time)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd "$here/tool" && GOFLAGS=-mod=mod go build -o "$bin.tmp" github.com/prometheus/prometheus/cmd/prometheus)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
