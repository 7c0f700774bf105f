#!/usr/bin/env bash
# The main job: `jpki-mobile demo`, the whole story on a fresh temporary data directory, every step
# checked (exit 0 only when each did what it should). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
node bin/jpki-mobile.js demo "$@"
