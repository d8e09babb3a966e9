#!/usr/bin/env bash
# simloom bootstrap: find a CPython X.Y, make the venv .venv/pyX.Y, install the dev
# tools into it, and build the Rust extension into it with maturin.
#
#   scripts/bootstrap.sh find  3.12   print the base interpreter that would be used
#   scripts/bootstrap.sh venv  3.12   create/refresh .venv/py3.12 (deps, skipped when up to date)
#   scripts/bootstrap.sh build 3.12   venv + `maturin develop --release` (target dir target/py3.12)
#   scripts/bootstrap.sh browser      install Chromium from the OS packages when it is missing
#                                     (the timeline's browser test and its screenshot use it)
#   scripts/bootstrap.sh redis        install redis-server from the OS packages when it is
#                                     missing (the tests start their own, on loopback)
#   scripts/bootstrap.sh postgres     install PostgreSQL 15 from the OS packages when it is
#                                     missing (the differential test and bench_postgres start
#                                     their own server, on loopback, as an unprivileged user)
#   scripts/bootstrap.sh nats         install nats-server from the OS packages when it is
#                                     missing (the tests start their own, on loopback)
#
# Override the interpreter search with SIMLOOM_PYTHON312=/path/to/python3.12 (same for 313).
# The project itself is never built through pip: pip only installs the dev tools, and
# maturin builds and installs the extension.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Keep in step with [project.optional-dependencies] dev in pyproject.toml, plus what
# the tests use. Changing this list (or pyproject.toml) re-runs pip.
DEV_DEPS=(
    'hypothesis>=6.115'
    'pytest>=8.3'
    'mypy>=1.14'
    'ruff>=0.9'
    'maturin>=1.7,<2'
    'aiohttp'
    'httpx'
    'trustme'
    'async-lru==2.4.0'
    'pytest-asyncio>=1.1'
    'rich>=13.7'
    'playwright>=1.49'
    'redis>=5.0'
    'distributed>=2024.1'
    'pytest-xdist>=3.5'
    'duckdb>=1.1'
    'sqlglot>=25'
    'asyncpg>=0.29'
    'sqlalchemy[asyncio]>=2.0'
    'aiofiles>=23.2'
    'nats-py>=2.9'
    'websockets>=14'
)

say() { printf 'simloom: %s\n' "$*" >&2; }
die() { printf 'simloom: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# is_python VERSION CANDIDATE: the candidate runs and is exactly that X.Y.
is_python() {
    local want=$1 cand=$2
    [[ -n $cand && -x $cand ]] || return 1
    local got
    got="$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || return 1
    [[ $got == "$want" ]]
}

pyenv_root() {
    local r=""
    if command -v pyenv >/dev/null 2>&1; then
        r="$(pyenv root 2>/dev/null || true)"
    fi
    [[ -n $r ]] || r="${PYENV_ROOT:-$HOME/.pyenv}"
    printf '%s\n' "$r"
}

# find_python VERSION: print the path of a working pythonX.Y, preferring the highest
# pyenv patch release; fail naming every place searched.
find_python() {
    local ver=$1 searched=() cand root override_var
    override_var="SIMLOOM_PYTHON${ver//./}"
    if [[ -n ${!override_var:-} ]]; then
        cand="${!override_var}"
        is_python "$ver" "$cand" && { printf '%s\n' "$cand"; return 0; }
        die "$override_var=$cand is not a working Python $ver"
    fi

    root="$(pyenv_root)"
    local re="^${ver//./\\.}\\.[0-9]+$" dir base
    local -a patches=()
    if [[ -d $root/versions ]]; then
        for dir in "$root/versions/$ver".*; do
            base="${dir##*/}"
            [[ $base =~ $re ]] && patches+=("$base")
        done
    fi
    searched+=("$root/versions/$ver.*/bin/python$ver")
    if ((${#patches[@]})); then
        while IFS= read -r base; do
            cand="$root/versions/$base/bin/python$ver"
            is_python "$ver" "$cand" && { printf '%s\n' "$cand"; return 0; }
        done < <(printf '%s\n' "${patches[@]}" | sort -V -r)
    fi

    cand="$(command -v "python$ver" 2>/dev/null || true)"
    searched+=("python$ver on PATH${cand:+ ($cand)}")
    is_python "$ver" "$cand" && { printf '%s\n' "$cand"; return 0; }

    for cand in "/usr/local/bin/python$ver" "/usr/bin/python$ver"; do
        searched+=("$cand")
        is_python "$ver" "$cand" && { printf '%s\n' "$cand"; return 0; }
    done

    {
        printf 'simloom: error: no working Python %s found. Searched:\n' "$ver"
        printf '  - %s\n' "${searched[@]}"
        printf 'Install it (e.g. `pyenv install %s`) or set %s=/path/to/python%s.\n' \
            "$ver" "$override_var" "$ver"
    } >&2
    exit 1
}

# ensure_venv VERSION: .venv/pyX.Y exists, works, has pip and the dev deps.
ensure_venv() {
    local ver=$1
    local venv="$ROOT/.venv/py$ver"
    local py="$venv/bin/python"
    local t0=$SECONDS

    if ! is_python "$ver" "$py"; then
        local base
        base="$(find_python "$ver")"
        if [[ -e $venv ]]; then
            say "venv .venv/py$ver is broken or for another Python; recreating it"
            rm -rf "$venv"
        fi
        say "creating venv .venv/py$ver from $base ..."
        mkdir -p "$ROOT/.venv"
        if ! "$base" -m venv "$venv"; then
            say "python -m venv failed; retrying without pip"
            rm -rf "$venv"
            "$base" -m venv --without-pip "$venv" || die "could not create a venv with $base"
        fi
        is_python "$ver" "$py" || die "venv .venv/py$ver was created but its python does not run"
        say "venv created in $((SECONDS - t0))s"
    fi

    if ! "$py" -m pip --version >/dev/null 2>&1; then
        say "pip missing in .venv/py$ver; running ensurepip ..."
        "$py" -m ensurepip --upgrade --default-pip >/dev/null ||
            die "ensurepip failed in .venv/py$ver (on Debian's python: apt-get install python$ver-venv)"
    fi

    local key stamp="$venv/.simloom-deps.stamp"
    key="$(
        {
            cat "$ROOT/pyproject.toml"
            printf '%s\n' "${DEV_DEPS[@]}"
            "$py" -c 'import sys; print(sys.version)'
        } | sha256sum | cut -d' ' -f1
    )"
    if [[ -f $stamp && "$(cat "$stamp")" == "$key" ]]; then
        say "dev dependencies for Python $ver up to date (.venv/py$ver)"
        return 0
    fi
    t0=$SECONDS
    say "installing dev dependencies into .venv/py$ver (pip) ..."
    rm -f "$stamp"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$py" -m pip install --quiet "${DEV_DEPS[@]}" ||
        die "pip install failed for Python $ver"
    printf '%s\n' "$key" >"$stamp"
    say "dev dependencies installed in $((SECONDS - t0))s"
}

# build_ext VERSION: build the extension (release) and install it into the venv.
build_ext() {
    local ver=$1
    local venv="$ROOT/.venv/py$ver"
    ensure_venv "$ver"
    local t0=$SECONDS
    say "building extension for Python $ver (maturin develop --release, target/py$ver) ..."
    (
        cd "$ROOT"
        unset PYTHONHOME CONDA_PREFIX
        export VIRTUAL_ENV="$venv"
        export PATH="$venv/bin:$PATH"
        export PYO3_PYTHON="$venv/bin/python"
        export CARGO_TARGET_DIR="$ROOT/target/py$ver"
        export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
        maturin develop --release
    ) || die "building the extension for Python $ver failed"
    say "extension for Python $ver built and installed in $((SECONDS - t0))s"
}

# ensure_browser: Chromium from the OS packages (Debian's `chromium`), installed
# with apt-get when it is missing. Playwright drives it (executable_path): never
# `playwright install`, which downloads a browser build of its own.
ensure_browser() {
    local found
    if [[ -n ${SIMLOOM_CHROMIUM:-} && ! -x $SIMLOOM_CHROMIUM ]]; then
        die "SIMLOOM_CHROMIUM=$SIMLOOM_CHROMIUM is not an executable"
    fi
    found="${SIMLOOM_CHROMIUM:-$(command -v chromium 2>/dev/null || true)}"
    if [[ -n $found && -x $found ]]; then
        say "browser: $found ($("$found" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "Chromium is missing and there is no apt-get here: install the OS package 'chromium' (or set SIMLOOM_CHROMIUM=/path/to/chromium)"
    [[ $(id -u) -eq 0 ]] ||
        die "Chromium is missing: run 'apt-get install -y chromium' as root (or set SIMLOOM_CHROMIUM=/path/to/chromium)"
    local t0=$SECONDS
    say "Chromium is missing; installing the OS package (apt-get install chromium) ..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed (needed to install chromium)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
        die "apt-get install chromium failed"
    command -v chromium >/dev/null 2>&1 || die "apt-get installed chromium, but it is not on PATH"
    say "Chromium installed in $((SECONDS - t0))s: $(chromium --version 2>/dev/null | head -n1)"
}

# ensure_redis: redis-server from the OS packages, installed with apt-get when it is
# missing. The tests start (and stop) their own servers on loopback ports; nothing
# here starts a service.
ensure_redis() {
    local found
    found="${SIMLOOM_REDIS_SERVER:-$(command -v redis-server 2>/dev/null || true)}"
    if [[ -n $found && -x $found ]]; then
        say "redis: $found ($("$found" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "redis-server is missing and there is no apt-get here: install the OS package 'redis-server' (or set SIMLOOM_REDIS_SERVER=/path/to/redis-server)"
    [[ $(id -u) -eq 0 ]] ||
        die "redis-server is missing: run 'apt-get install -y redis-server' as root (or set SIMLOOM_REDIS_SERVER=/path/to/redis-server)"
    local t0=$SECONDS
    say "redis-server is missing; installing the OS package (apt-get install redis-server) ..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed (needed to install redis-server)"
    # policy-rc.d 101: the package must not start a system-wide server of its own.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null ||
        { if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi; die "apt-get install redis-server failed"; }
    if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi
    command -v redis-server >/dev/null 2>&1 || die "apt-get installed redis-server, but it is not on PATH"
    say "redis-server installed in $((SECONDS - t0))s: $(redis-server --version 2>/dev/null | head -n1)"
}

# ensure_postgres: PostgreSQL's server binaries (initdb, postgres) from the OS
# packages, installed with apt-get when missing. Nothing here starts a service.
ensure_postgres() {
    local found
    found="${SIMLOOM_POSTGRES_BIN:-}"
    if [[ -z $found ]]; then
        found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    fi
    if [[ -n $found && -x $found/initdb && -x $found/postgres ]]; then
        say "postgres: $found ($("$found/postgres" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "PostgreSQL is missing and there is no apt-get here: install the OS package 'postgresql' (or set SIMLOOM_POSTGRES_BIN=/path/to/bin)"
    [[ $(id -u) -eq 0 ]] ||
        die "PostgreSQL is missing: run 'apt-get install -y postgresql' as root (or set SIMLOOM_POSTGRES_BIN=/path/to/bin)"
    local t0=$SECONDS
    say "PostgreSQL is missing; installing the OS package (apt-get install postgresql) ..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed (needed to install postgresql)"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null ||
        { if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi; die "apt-get install postgresql failed"; }
    if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    [[ -n $found && -x $found/initdb ]] || die "apt-get installed postgresql, but initdb is not under /usr/lib/postgresql/*/bin"
    say "PostgreSQL installed in $((SECONDS - t0))s: $("$found/postgres" --version 2>/dev/null | head -n1)"
}

# ensure_nats: nats-server from the OS packages (Debian's `nats-server`, which
# installs it as /usr/sbin/nats-server), installed with apt-get when it is missing.
# The tests start (and stop) their own servers on loopback ports; nothing here
# starts a service.
ensure_nats() {
    local found
    found="${SIMLOOM_NATS_SERVER:-$(command -v nats-server 2>/dev/null || true)}"
    if [[ -z $found && -x /usr/sbin/nats-server ]]; then
        found=/usr/sbin/nats-server
    fi
    if [[ -n $found && -x $found ]]; then
        say "nats: $found ($("$found" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "nats-server is missing and there is no apt-get here: install the OS package 'nats-server' (or set SIMLOOM_NATS_SERVER=/path/to/nats-server)"
    [[ $(id -u) -eq 0 ]] ||
        die "nats-server is missing: run 'apt-get install -y nats-server' as root (or set SIMLOOM_NATS_SERVER=/path/to/nats-server)"
    local t0=$SECONDS
    say "nats-server is missing; installing the OS package (apt-get install nats-server) ..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed (needed to install nats-server)"
    # policy-rc.d 101: the package must not start a system-wide server of its own.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null ||
        { if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi; die "apt-get install nats-server failed"; }
    if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi
    [[ -x /usr/sbin/nats-server ]] || command -v nats-server >/dev/null 2>&1 ||
        die "apt-get installed nats-server, but it is neither on PATH nor /usr/sbin/nats-server"
    say "nats-server installed in $((SECONDS - t0))s: $(/usr/sbin/nats-server --version 2>/dev/null | head -n1)"
}

if [[ $# -eq 1 && $1 == postgres ]]; then
    ensure_postgres
    exit 0
fi
if [[ $# -eq 1 && $1 == nats ]]; then
    ensure_nats
    exit 0
fi
if [[ $# -eq 1 && $1 == browser ]]; then
    ensure_browser
    exit 0
fi
if [[ $# -eq 1 && $1 == redis ]]; then
    ensure_redis
    exit 0
fi
[[ $# -eq 2 ]] || usage
cmd=$1
ver=$2
[[ $ver =~ ^3\.[0-9]+$ ]] || die "expected a Python version like 3.12, got '$ver'"

case $cmd in
    find) find_python "$ver" ;;
    venv) ensure_venv "$ver" ;;
    build) build_ext "$ver" ;;
    *) usage ;;
esac
