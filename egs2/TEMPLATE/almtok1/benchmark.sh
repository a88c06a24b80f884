#!/usr/bin/env bash
# Benchmark: ALMTokenizer against ESPnet's SoundStream and DAC at the same bitrate,
# and its ablations, all trained, decoded and scored by this recipe's ./run.sh.
# Usage: ./benchmark.sh --config conf/tuning/benchmark_tiny.yaml [--ngpu N]
#        [--stage N] [--stop_stage N] [--systems 'a b'] [--out_dir DIR]
# Stages and the config format: python3 -m espnet_almtok.bin.benchmark --help
set -euo pipefail
. ./path.sh
exec python3 -m espnet_almtok.bin.benchmark --run ./run.sh "$@"
