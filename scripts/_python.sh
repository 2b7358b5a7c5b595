# Sourced by the scripts in this folder. Provides `in_python CMD...`, which runs CMD in the
# repository with the project's virtualenv first on PATH, on a Python >= 3.14.2.
#
# A Python >= 3.14.2 on PATH is used directly. Where there is none (Debian 12 hosts), a
# Debian testing root with python3.14 is made once with debootstrap, outside the repository,
# and everything runs inside it through chroot. Every step is idempotent.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY_ROOT=${HA_INGESTOR_PY_ROOT:-/var/cache/ha-ingestor/py314-root}
# Debian packages the tests and tools need next to Python (kept in the root, or the host).
# g++: Home Assistant's assist_pipeline requirements (pymicro-vad, pyspeex-noise, pinned in
# requirements_test.txt for scripts/develop) have no Python 3.14 wheels and build with C++.
SYSTEM_PACKAGES=(python3.14 python3.14-venv python3.14-dev gcc g++ ca-certificates influxdb procps)
# The servers the tests start themselves next to influxd: VictoriaMetrics (a second real
# peer for line protocol) and nginx (the reverse proxy in front of both, for URLs with a
# path). Their packages do not start a service in the root (no init runs there).
SERVER_PACKAGES=(victoria-metrics nginx-light)
# The browser the end-to-end tests (tests/e2e) drive through Playwright, and a font for its
# screenshots. Installed without Recommends (those would add ~300 desktop packages).
BROWSER_PACKAGES=(chromium fonts-liberation)
# The PostgreSQL with TimescaleDB that scripts/bench's peer modes (Scribe, LTSS) write to.
# The benchmark runs its own servers: the packages must not make and start a cluster of
# their own, so they are installed after that is switched off (_no_default_cluster).
POSTGRES_PACKAGES=(postgresql-18 postgresql-18-timescaledb)

_host_python() {
  local candidate
  for candidate in python3.14 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 14, 2))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

_log() { printf '[ha-ingestor] %s\n' "$*" >&2; }

# _copy_in SRC DEST: copy only when different, and atomically: processes already running in
# the root (servers, tests of a parallel run) may be reading DEST, and `cp` would let them
# see it empty or half written (seen: ssl.SSLError "PEM lib" loading the CA bundle).
_copy_in() {
  cmp -s "$1" "$2" && return 0
  cp "$1" "$2.ha-ingestor-tmp" && mv -f "$2.ha-ingestor-tmp" "$2"
}

# _no_default_cluster ROOT: tell postgresql-common (in ROOT, "" for the host) to make no
# cluster when a server package is installed.
_no_default_cluster() {
  mkdir -p "$1/etc/postgresql-common/createcluster.d"
  echo 'create_main_cluster = false' >"$1/etc/postgresql-common/createcluster.d/ha-ingestor.conf"
}

# _bind_into_root DIR: make the host's DIR visible at the same path inside the root.
_bind_into_root() {
  mkdir -p "$PY_ROOT$1"
  # A mount left by an earlier clone at the same path (CI reuses paths) still shows the
  # deleted directory: nothing can be created in it. Same device and inode, or mount anew.
  if mountpoint -q "$PY_ROOT$1" &&
    [ "$(stat -c %d:%i "$1")" != "$(stat -c %d:%i "$PY_ROOT$1")" ]; then
    _log "replacing a stale mount (of an earlier checkout) at $PY_ROOT$1"
    umount -l "$PY_ROOT$1"
  fi
  mountpoint -q "$PY_ROOT$1" || mount --bind "$1" "$PY_ROOT$1"
}

_provision_root() {
  local packages
  packages=$(printf '%s,' "${SYSTEM_PACKAGES[@]}")
  packages=${packages%,}
  mkdir -p "$(dirname "$PY_ROOT")"
  exec 9>"$(dirname "$PY_ROOT")/.provision.lock"
  flock 9
  if [ ! -x "$PY_ROOT/usr/bin/python3.14" ]; then
    _log "no Python >= 3.14.2 on PATH: building a Debian testing root at $PY_ROOT (once, ~2 min)"
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    local mirror
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    # Build beside the final place and move it in only when complete: a half-made root is
    # simply rebuilt, and nothing is ever mounted into it.
    rm -rf "$PY_ROOT.partial"
    debootstrap --variant=minbase --include="$packages" forky "$PY_ROOT.partial" "$mirror" \
      /usr/share/debootstrap/scripts/sid >"$(dirname "$PY_ROOT")/debootstrap.log" 2>&1 ||
      { tail -20 "$(dirname "$PY_ROOT")/debootstrap.log" >&2; return 1; }
    mv "$PY_ROOT.partial" "$PY_ROOT"
  fi
  _copy_in /etc/resolv.conf "$PY_ROOT/etc/resolv.conf"
  _copy_in /etc/ssl/certs/ca-certificates.crt "$PY_ROOT/etc/ssl/certs/ca-certificates.crt"
  mountpoint -q "$PY_ROOT/proc" || mount -t proc proc "$PY_ROOT/proc"
  mountpoint -q "$PY_ROOT/dev" || mount --rbind /dev "$PY_ROOT/dev"
  _bind_into_root "$REPO"
  # A root made before a package was added here (or just made by debootstrap, which
  # installs SYSTEM_PACKAGES only) gets the rest with apt-get. Asked of dpkg itself, so
  # that checkouts with different lists sharing the root do not reinstall in turn.
  local all=("${SYSTEM_PACKAGES[@]}" "${SERVER_PACKAGES[@]}" "${POSTGRES_PACKAGES[@]}" "${BROWSER_PACKAGES[@]}")
  if [ "$(chroot "$PY_ROOT" dpkg-query -W -f='${db:Status-Abbrev}\n' "${all[@]}" 2>/dev/null |
    grep -c '^ii')" != "${#all[@]}" ]; then
    _log "installing system packages in $PY_ROOT: ${all[*]}"
    _no_default_cluster "$PY_ROOT"
    chroot "$PY_ROOT" /bin/sh -c "apt-get -o Acquire::Check-Valid-Until=false update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${SYSTEM_PACKAGES[*]} ${SERVER_PACKAGES[*]} ${POSTGRES_PACKAGES[*]} >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${BROWSER_PACKAGES[*]} >/dev/null"
  fi
  flock -u 9
}

_provision_host() {
  # A machine with its own Python 3.14: only the servers the tests start are needed
  # (Debian's packages: influxd is in influxdb, nginx in nginx-light).
  local server package
  for server in influxd:influxdb victoria-metrics:victoria-metrics nginx:nginx-light; do
    package=${server#*:}
    server=${server%%:*}
    command -v "$server" >/dev/null 2>&1 && continue
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    else
      _log "$server is not on PATH; install it (Debian testing: apt-get install $package)"
      return 1
    fi
  done
  # scripts/bench's peer modes and their tests need PostgreSQL with TimescaleDB; a machine
  # without the packages (they are Debian testing's) gets a warning, not a failure.
  if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      _no_default_cluster ""
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "${POSTGRES_PACKAGES[@]}" >/dev/null; } ||
        _log "could not install ${POSTGRES_PACKAGES[*]}: scripts/bench modes s and t and their tests will fail"
    else
      _log "no PostgreSQL server: scripts/bench modes s and t and their tests need" \
        "${POSTGRES_PACKAGES[*]} (or PostgreSQL 18 with TimescaleDB)"
    fi
  fi
  # The end-to-end tests need a Chromium (or HA_INGESTOR_CHROMIUM naming one); everything
  # else works without it, so a machine that cannot install it only gets a warning.
  if [ -z "${HA_INGESTOR_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 &&
    ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${BROWSER_PACKAGES[@]}" >/dev/null; } ||
        _log "could not install ${BROWSER_PACKAGES[*]}: the end-to-end tests (tests/e2e) will fail"
    else
      _log "no chromium on PATH: the end-to-end tests (tests/e2e) need it (Debian:" \
        "apt-get install chromium, or set HA_INGESTOR_CHROMIUM to a Chromium or Chrome binary)"
    fi
  fi
}

if HOST_PYTHON=$(_host_python); then
  VENV="$REPO/.venv"
  _provision_host
  # The command line that runs "$@" in the repository with the venv first on PATH.
  _PY_PREFIX=(env PATH="$VENV/bin:$PATH")
  PYTHON_FOR_VENV=$HOST_PYTHON
else
  VENV="$REPO/.venv-py314"
  PY_ROOT_IN_USE=1
  _provision_root
  # PIP_FIND_LINKS names a host folder that does not exist inside the root. chroot, env and
  # bash all exec: the command keeps the PID of the chroot process, so signals sent to that
  # PID (Ctrl-C handling in scripts/develop) reach the command itself.
  _PY_PREFIX=(chroot "$PY_ROOT" /usr/bin/env -u PIP_FIND_LINKS
    PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" HOME=/root
    /bin/bash -c 'cd "$1" && shift && exec "$@"' _ "$REPO")
  PYTHON_FOR_VENV=/usr/bin/python3.14
fi
_run() { (cd "$REPO" && exec "${_PY_PREFIX[@]}" "$@"); }

# _ensure_venv VENV REQUIREMENTS: make the virtualenv VENV (once) and install the file
# REQUIREMENTS (a path in the repository) into it whenever that file has changed.
_ensure_venv() {
  local venv=$1 requirements=$2 stamp="$1/.requirements.sha256" want
  want=$(sha256sum <"$REPO/$requirements" | cut -d' ' -f1)
  # Fast path, no lock: the venv is there and up to date.
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && _run test -x "$venv/bin/python"; then
    return 0
  fi
  # One installer at a time (scripts may run side by side); the lock lives in the
  # git-ignored .data/ folder.
  mkdir -p "$REPO/.data"
  (
    flock 8
    # The venv's python links to an interpreter that may exist only inside the root:
    # test it where it runs.
    if ! _run test -x "$venv/bin/python"; then
      _log "creating virtualenv $venv"
      _run "$PYTHON_FOR_VENV" -m venv "$venv"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      _log "installing $requirements into $venv"
      _run "$venv/bin/python" -m pip install -q --upgrade pip
      _run "$venv/bin/python" -m pip install -q -r "$requirements"
      echo "$want" >"$stamp"
    fi
  ) 8>"$REPO/.data/.venv.lock"
}

# ensure_release_venvs: the virtualenvs of the other Home Assistant releases HA Ingestor is
# tested on (tests/e2e/test_releases.py): one per requirements file in tests/e2e/releases/,
# named after the project's own (.venv-py314-ha-2026.3.4, say), made once, kept up to date.
ensure_release_venvs() {
  local requirements
  for requirements in "$REPO"/tests/e2e/releases/*.txt; do
    requirements=${requirements#"$REPO/"}
    _ensure_venv "$VENV-ha-$(basename "$requirements" .txt)" "$requirements"
  done
}

# share_with_python DIR: make DIR, a host directory, readable by in_python's commands at
# the same path (it already is unless they run in the root and DIR is outside the
# repository).
share_with_python() {
  local dir
  dir=$(cd "$1" && pwd)
  case "$dir/" in "$REPO"/*) return 0 ;; esac
  if [ -n "${PY_ROOT_IN_USE:-}" ]; then
    _bind_into_root "$dir"
  fi
}

# in_python CMD...: run CMD in the repository with the venv on PATH (in the root if needed).
in_python() {
  _ensure_venv "$VENV" requirements_test.txt
  _run "$@"
}

# in_python_exec [--new-session] CMD...: the same, but replaces the current (sub)shell with
# CMD, so that `( in_python_exec CMD... ) &` gives `$!` = the PID of CMD itself (through
# chroot), e.g. for sending it signals. --new-session starts CMD in a session and process
# group of its own (setsid, same PID): a terminal's Ctrl-C or hang-up then reaches only the
# calling script, which decides how and in which order to stop its servers.
in_python_exec() {
  local setsid=()
  if [ "${1:-}" = --new-session ]; then
    setsid=(setsid)
    shift
  fi
  _ensure_venv "$VENV" requirements_test.txt
  cd "$REPO"
  exec "${setsid[@]}" "${_PY_PREFIX[@]}" "$@"
}
