#!/usr/bin/env bash
# Installs the Debian packages jpki-mobile's commands and tests use. Idempotent: installs only what
# is missing, and only as root; otherwise it names what to install and exits non-zero.
set -euo pipefail

packages=(
  openssl          # independent checks of certificates, CRLs, OCSP, CMS; baseline for benchmarks
  gnutls-bin       # certtool, ocsptool: a second independent checker
  libnss3-tools    # certutil, vfychain, crlutil: a third one
  softhsm2         # PKCS#11 token for the HSM key store tests
  sqlite3          # to inspect the embedded registry by hand
  pcscd            # PC/SC daemon: real middleware talks to our emulated cards through it
  vsmartcard-vpcd  # virtual PC/SC reader that emulated cards connect to
  opensc           # OpenSC (jpki driver, pkcs11-tool, pkcs15-tool): the independent card reader
  pcsc-tools       # pcsc_scan, scriptor
  libpcsclite-dev  # headers for the smartcard npm package (PC/SC client)
  time             # GNU time: peak memory of the peers in `bench crl`
  wrk              # HTTP load generator of `bench ocsp` (else the benchmark's own, in Node)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "jpki-mobile needs these Debian packages: ${missing[*]}" >&2
  echo "Install them as root:  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
