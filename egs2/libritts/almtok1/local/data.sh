#!/usr/bin/env bash
# LibriTTS speech + a folder of sound clips (ESC-50 or AudioSet-style), both from
# local paths (nothing is downloaded). Writes under data/:
#   train_speech, dev_speech, test_speech   LibriTTS subsets (local/prep_libritts.py)
#   train_sound, dev_sound, test_sound      the sound folder (local/prep_sound_folder.py)
#   train = train_speech + train_sound, dev = dev_speech + dev_sound
set -euo pipefail
. ./path.sh

libritts_root=""     # .../LibriTTS, holding train-clean-100/, dev-clean/, ...
sound_root=""        # ESC-50 checkout (meta/esc50.csv + audio/) or a folder of clips
train_subsets=train-clean-100,train-clean-360
dev_subset=dev-clean
test_subset=test-clean
test_folds=5         # ESC-50 folds of test_sound (comma list)
dev_folds=4          # ESC-50 folds of dev_sound
labels_csv=""        # Plain folder: filename,label CSV (empty: every clip is "sound")
dev_fraction=0.05    # Plain folder: share of clips in dev_sound (by file-name hash)
test_fraction=0.05   # Plain folder: share of clips in test_sound
help_message="Usage: $0 --libritts_root DIR --sound_root DIR [--train_subsets A,B] \
[--dev_subset S] [--test_subset S] [--test_folds 5] [--dev_folds 4] [--labels_csv F] \
[--dev_fraction X] [--test_fraction X]"
. "${ALMTOK_LOCAL}/parse_options.sh"

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($0) $*"; }
die() { log "Error: $*" >&2; exit 1; }

[ -n "${libritts_root}" ] || die "no --libritts_root (set libritts_root in run.sh)"
[ -n "${sound_root}" ] || die "no --sound_root (set sound_root in run.sh)"
[ -d "${libritts_root}" ] || die "LibriTTS root not found: ${libritts_root}"
[ -d "${sound_root}" ] || die "sound folder not found: ${sound_root}"

log "LibriTTS from ${libritts_root}"
python3 "${ALMTOK_LOCAL}/prep_libritts.py" --root "${libritts_root}" --out_dir data \
    --set "train_speech=${train_subsets}" \
    --set "dev_speech=${dev_subset}" \
    --set "test_speech=${test_subset}"

log "Sound clips from ${sound_root}"
sound_opts=(--test_folds "${test_folds}" --dev_folds "${dev_folds}"
    --dev_fraction "${dev_fraction}" --test_fraction "${test_fraction}")
if [ -n "${labels_csv}" ]; then
    sound_opts+=(--labels_csv "${labels_csv}")
fi
python3 "${ALMTOK_LOCAL}/prep_sound_folder.py" --root "${sound_root}" --out_dir data \
    --suffix _sound "${sound_opts[@]}"

# combine DST SRC...: concatenate and sort the Kaldi files of SRC dirs into DST.
combine() {
    local dst=$1 f src dups
    shift
    rm -rf "${dst}"
    mkdir -p "${dst}"
    for f in wav.scp utt2spk text; do
        local files=()
        for src in "$@"; do
            if [ -f "${src}/${f}" ]; then
                files+=("${src}/${f}")
            fi
        done
        # text exists for speech only; the other files must exist everywhere.
        if [ ${#files[@]} -gt 0 ]; then
            LC_ALL=C sort "${files[@]}" > "${dst}/${f}"
        fi
    done
    dups=$(cut -d' ' -f1 "${dst}/wav.scp" | uniq -d | head -n 3)
    [ -z "${dups}" ] || die "${dst}: utterance ids in more than one of $*: ${dups//$'\n'/ }"
    # spk2utt is rebuilt, not concatenated, so a label shared by two sources stays one line.
    awk '{ utts[$2] = utts[$2] " " $1 } END { for (s in utts) print s utts[s] }' \
        "${dst}/utt2spk" | LC_ALL=C sort > "${dst}/spk2utt"
    log "${dst}: $(wc -l < "${dst}/wav.scp") clips from $*"
}
combine data/train data/train_speech data/train_sound
combine data/dev data/dev_speech data/dev_sound
log "Done: data/{train,dev,test_speech,test_sound,train_speech,train_sound}"
