#!/usr/bin/env bash
# Builds Jaeger v2 (all-in-one) from the module proxy into .tools/, once per version.
# Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/jaegertracing/jaeger" {print $3}' "$here/tool/go.mod")"
bin="$root/.tools/jaeger-$version/jaeger"
if [ ! -x "$bin" ]; then
  echo "building Jaeger $version (a few minutes the first time)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd "$here/tool" && GOFLAGS=-mod=mod go build -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
