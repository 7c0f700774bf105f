#!/usr/bin/env bash
# The test command: installs what is needed, builds, lints, then runs every test with node's test
# runner. PostgreSQL tests use JPKI_TEST_PG (default postgres://postgres@127.0.0.1:5432/test); with
# CI set they fail rather than skip when the server cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
npx biome check .

mapfile -t files < <(find dist/src dist/bench -name '*.test.js' 2>/dev/null | sort)
node --test --test-concurrency="${TEST_CONCURRENCY:-2}" "$@" "${files[@]}"
