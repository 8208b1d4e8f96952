#!/usr/bin/env bash
# Installs the two baselines bench/lifecycle.py compares against, each in its own
# virtualenv under bench/.baselines (git-ignored). Idempotent: a no-op when both are there.
#
#   bench/.baselines/circus       Circus 0.19       (circusd, circusctl)
#   bench/.baselines/supervisord  supervisord 4.3   (PyPI name `supervisor`; kept apart from
#                                                    our package, which also imports as
#                                                    `supervisor`)
#
# PYTHON=... picks the interpreter (default: python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")/.baselines"
python="${PYTHON:-python3}"

# install NAME REQUIREMENT BINARY: one venv, skipped when its binary already runs.
install() {
    local name="$1" requirement="$2" binary="$3"
    local venv="$root/$name"
    local stamp="$venv/.installed"
    if [[ -x "$venv/bin/$binary" && -f "$stamp" && "$(cat "$stamp")" == "$requirement" ]]; then
        return 0
    fi
    echo "installing $requirement into $venv"
    rm -rf "$venv"
    mkdir -p "$root"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
    "$venv/bin/$binary" --help >/dev/null
    echo "$requirement" >"$stamp"
}

install circus 'circus==0.19.*' circusd
install supervisord 'supervisor==4.3.*' supervisord
