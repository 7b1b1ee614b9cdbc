#!/usr/bin/env bash
# Installs the reference tools the backup benchmark compares against (Debian packages), if they are missing:
#   restic, borgbackup (borg), time (GNU /usr/bin/time, for peak RSS).
# Runs `apt-get update` once, then one `apt-get install -y`. Needs root (or sudo without a password).
set -u
need=()
command -v restic >/dev/null 2>&1 || need+=(restic)
command -v borg >/dev/null 2>&1 || need+=(borgbackup)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-tools: restic, borg and GNU time are present"
  exit 0
fi
echo "install-tools: installing ${need[*]} from Debian"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "install-tools: cannot install ${need[*]}: not root and no password-less sudo." >&2
    echo "install-tools: as root run: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 2
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-tools: cannot install ${need[*]}: apt-get not found (not a Debian-like system); install them by hand." >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get update -qq; then
  echo "install-tools: 'apt-get update' failed; cannot install ${need[*]}." >&2
  exit 2
fi
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
  echo "install-tools: 'apt-get install -y ${need[*]}' failed." >&2
  exit 2
fi
echo "install-tools: installed ${need[*]}"
