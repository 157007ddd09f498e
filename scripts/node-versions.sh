#!/usr/bin/env bash
# Makes the Node.js release lines keepsake supports available without installing them system-wide:
# fetches the official binaries with their C++ headers (npm's node-<os>-<arch> packages: bin/node,
# include/node) from the npm registry into a cache outside git, and prints one directory per
# requested major version, in order. Run <dir>/bin/node; build native addons for it offline with
# npm_config_nodedir=<dir>.
#
#   scripts/node-versions.sh            # 22 and 24
#   scripts/node-versions.sh 24         # just 24
#
# The cache is $KEEPSAKE_NODE_CACHE (default: .cache/node in the repository), one directory per major
# version; a version already there is reused as is (delete its directory to get a newer patch release).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KEEPSAKE_NODE_CACHE:-$root/.cache/node}
[ $# -gt 0 ] || set -- 22 24

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "node-versions: no Node.js binary package for $(uname -s) on npm" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "node-versions: no Node.js binary package for $(uname -m) on npm" >&2; exit 1 ;;
esac

usable() { [ -x "$1/bin/node" ] && [ -f "$1/include/node/node.h" ] && "$1/bin/node" -e '' 2>/dev/null; }

mkdir -p "$cache"
for major in "$@"; do
  case "$major" in
    '' | *[!0-9]*) echo "node-versions: '$major' is not a major version number" >&2; exit 2 ;;
  esac
  dir=$cache/$major
  if ! usable "$dir"; then
    package=node-$os-$arch@$major
    echo "node-versions: fetching $package from the npm registry" >&2
    work=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # npm pack resolves the newest $major.x and checks the tarball against the registry's integrity.
    tarball=$(cd "$work" && npm pack "$package" --loglevel=error --no-audit --no-fund | tail -n 1)
    mkdir "$work/node"
    tar -xzf "$work/$tarball" -C "$work/node" --strip-components=1
    usable "$work/node" || { echo "node-versions: $package has no usable bin/node and include/node" >&2; exit 1; }
    # Another run may have finished the same download meanwhile: then keep (and use) its copy.
    if ! usable "$dir"; then
      rm -rf "$dir"
      mv -T "$work/node" "$dir" 2>/dev/null || usable "$dir"
    fi
    rm -rf "$work"
    trap - EXIT
    echo "node-versions: Node.js $("$dir/bin/node" --version) is in $dir" >&2
  fi
  echo "$dir"
done
