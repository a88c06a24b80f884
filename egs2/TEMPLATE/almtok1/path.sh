# Shared by every almtok1 recipe (symlinked). The package itself must be installed
# (tools/setup.sh); nothing here needs an ESPnet git checkout.
ALMTOK_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
export ALMTOK_ROOT
# The environment tools/setup.sh made, unless one is active already (as ESPnet's
# tools/activate_python.sh).
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f "${ALMTOK_ROOT}/tools/activate_python.sh" ]; then
    . "${ALMTOK_ROOT}/tools/activate_python.sh"
fi
export ALMTOK_LOCAL=${ALMTOK_ROOT}/local
export PYTHONUNBUFFERED=1
export PYTHONIOENCODING=UTF-8
# ESPnet 202412's SpeechLM (stages 9-12 put it first on PYTHONPATH; see
# tools/setup_speechlm.sh).
export ALMTOK_SPEECHLM=${ALMTOK_ROOT}/tools/speechlm/espnet-202412
# One thread per process, as ESPnet's recipes: jobs run side by side, and
# oversubscribed cores slow CPU training many times over.
export OMP_NUM_THREADS=1
