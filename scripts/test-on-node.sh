#!/usr/bin/env bash
# Runs `npm test` on another Node.js major version (default: 24, the newest) without touching this
# checkout's node_modules, which stay built for the machine's Node: copies the working tree (git's
# files, new ones included) and node_modules to a temporary directory, rebuilds the native addons
# there (fs-ext and any other package with a binding.gyp) for that Node's ABI against its headers,
# checks that fs-ext loads, and runs the suite there with that Node first on PATH.
#
#   scripts/test-on-node.sh                                # npm test on Node 24
#   KEEPSAKE_REQUIRE_SERVICES=1 scripts/test-on-node.sh 22
#   scripts/test-on-node.sh 24 test/handlers/file.test.ts  # just these test files
#
# scripts/node-versions.sh provides the Node binary; the copy is deleted afterwards. With
# KEEPSAKE_SUITE_LOCK=<file>, the suite runs under flock(1) on that file, so that a suite started
# elsewhere under the same lock (.ci/run's first pass) never shares the database tables and Redis
# keys with it at the same time, while the preparation overlaps.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
major=${1:-24}
shift || true
cd "$root"

nodedir=$(scripts/node-versions.sh "$major")
# The suite's packed-package test fetches Node versions too: from the same cache, not the copy's.
export KEEPSAKE_NODE_CACHE=${KEEPSAKE_NODE_CACHE:-$root/.cache/node}

work=$(mktemp -d "${TMPDIR:-/tmp}/keepsake-node$major.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # as readable as the checkout: some tests run code as an unprivileged user
trap 'exit 143' TERM
trap 'exit 130' INT

git ls-files -z --cached --others --exclude-standard |
  rsync -a --from0 --files-from=- --ignore-missing-args ./ "$work/"
mkdir "$work/node_modules"
cp -a node_modules/. "$work/node_modules/"

cd "$work"
export PATH="$nodedir/bin:$PATH" npm_config_nodedir="$nodedir"
echo "node-$major: $(node --version) in $work"

# Packages with a native addon: a binding.gyp at the package's root.
mapfile -t addons < <(find node_modules -name binding.gyp |
  grep -E '(^|/)node_modules/(@[^/]+/)?[^/]+/binding\.gyp$' | xargs -r -n1 dirname | sort -u)
if [ ${#addons[@]} -gt 0 ]; then
  mapfile -t names < <(for dir in "${addons[@]}"; do
    node -p "require('./$dir/package.json').name"
  done | sort -u)
  echo "node-$major: rebuilding ${names[*]}"
  npm rebuild "${names[@]}" --no-audit --no-fund >/dev/null
fi
# keepsake's file driver falls back to mkdir locks when fs-ext does not load: make that loud here.
node -e "require('fs-ext').flockSync" ||
  { echo "node-$major: fs-ext does not load on $(node --version)" >&2; exit 1; }

if [ -n "${KEEPSAKE_SUITE_LOCK:-}" ]; then
  echo "node-$major: ready; waiting for the lock on $KEEPSAKE_SUITE_LOCK" >&2
  exec 9>"$KEEPSAKE_SUITE_LOCK"
  flock 9
fi
if [ $# -gt 0 ]; then
  echo "node-$major: $* on $(node --version)"
  node --import tsx --test --test-concurrency=1 "$@" 9>&-
else
  echo "node-$major: npm test on $(node --version)"
  npm test 9>&-
fi
