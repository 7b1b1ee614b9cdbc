#!/bin/sh
# Make sure Debian's chromium is at /usr/bin/chromium for the admin page's browser test (adapters/daemon/
# admin-page.test.ts) and `npm run ui:shot`. Idempotent: does nothing when it is already there. Otherwise installs the
# `chromium` package with apt-get, as root or through sudo (without a password prompt), and says clearly what to do
# when it cannot. `npm test` runs it before the tests, so a fresh CI machine (.ci/run: npm ci && npm test) gets it.
set -eu

# CHROMIUM_BIN overrides the path, for testing this script only (the test and playwright use /usr/bin/chromium).
CHROMIUM=${CHROMIUM_BIN:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

fail() {
  echo "ensure-chromium: $1" >&2
  echo "ensure-chromium: the admin page test needs Debian's chromium at $CHROMIUM; install it with: sudo apt-get install -y chromium" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "$CHROMIUM is missing and this machine has no apt-get (not Debian/Ubuntu)"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  SUDO="sudo -n"
else
  fail "$CHROMIUM is missing, and installing it needs root (not root, and no password-less sudo)"
fi

echo "ensure-chromium: $CHROMIUM is missing; installing Debian's chromium package (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || fail "apt-get update failed"
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null || fail "apt-get install chromium failed"
[ -x "$CHROMIUM" ] || fail "the chromium package is installed but $CHROMIUM is not there (on Ubuntu it is a snap stub; use Debian's package)"
echo "ensure-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)" >&2
