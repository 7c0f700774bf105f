#!/usr/bin/env bash
# The main job, for now: a JPKI CA in ./.jpki (created once) and one more test citizen with a
# My Number card. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

data="${JPKI_DATA:-.jpki}"
cli() { node bin/jpki-mobile.js "$@"; }
if [ ! -f "$data/config.json" ]; then
  cli ca init --data "$data"
fi
cli citizen add --data "$data" --name "山田 花子" --birth 1990-02-28 --sex female \
  --address "東京都千代田区霞が関2丁目1番2号" --residence "大阪府大阪市北区中之島1丁目3番20号"
cli cert list --data "$data"
cli audit verify --data "$data"
