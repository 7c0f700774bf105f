#!/usr/bin/env bash
# What both README commands need first: the Debian packages (as root), the npm packages when
# package-lock.json changed since the last install, and a build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi
npx tsc -p tsconfig.json
