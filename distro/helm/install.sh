#!/usr/bin/env bash
# Builds Helm from the module proxy into .tools/, once per version, for the tests that render
# the official collector chart with distro/helm's values. Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$here/tool/go.mod")"
bin="$root/.tools/helm-$version/helm"
if [ ! -x "$bin" ]; then
  echo "building Helm $version (a few minutes the first time)" >&2
  mkdir -p "$(dirname "$bin")"
  (cd "$here/tool" && GOFLAGS=-mod=mod go build -o "$bin.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
