#!/usr/bin/env bash
# ESPnet SpeechLM side environment, for the recipe's stages 9-12 and the tests.
# SpeechLM last shipped in espnet==202412, whose own pins (numpy<1.24, ...) do not
# install on Python 3.11. We install that release with --no-deps into
# tools/speechlm/espnet-202412 and put the folder first on PYTHONPATH when running
# SpeechLM: it replaces ESPnet 202511 there, and every dependency comes from the
# main environment at its current version. Idempotent; prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
target=tools/speechlm/espnet-202412

if [ ! -f "${target}/espnet2/tasks/speechlm.py" ]; then
    rm -rf "${target}.tmp"
    "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps \
        --target "${target}.tmp" espnet==202412 >&2
    rm -rf "${target}"
    mv "${target}.tmp" "${target}"
fi
# The g2p (espeak-ng through phonemizer) and BPE of the tts/asr text, and what
# 202412 imports that ESPnet 202611 no longer installs (the [speechlm] extra).
"$PYTHON" -c "import phonemizer, sentencepiece, h5py, g2p_en, jamo, tacotron_cleaner" 2>/dev/null \
    || "$PYTHON" -m pip install -q --disable-pip-version-check phonemizer sentencepiece \
        h5py g2p_en jamo espnet_tts_frontend >&2
PYTHONPATH="${target}" "$PYTHON" -W ignore -c "
import espnet, espnet2.tasks.speechlm, espnet2.speechlm.definitions as d
assert espnet.__version__ == '202412', espnet.__version__
assert 'asr' in d.tasks, 'espnet_almtok hooks are not installed (pip install -e .)'
" >/dev/null 2>&1 || { echo "Error: ${target} does not import ESPnet 202412 SpeechLM with our hooks" >&2; exit 1; }
cd "${target}" && pwd
