"""Guard: the tiny configs learn a codec whose output follows its input.

Every model this project trained before had one failure: whatever went in, the
same sound came out (PyTorch's default init drowned the input in biases, and
raw k-means centres left the encoder one reachable entry per layer). Here the
tiny stage-1 autoencoder and the tiny stage 2 train for a bounded number of
steps on a few flite clips, then face unseen sentences from an unseen voice.
"""

import shutil

import numpy as np
import pytest
import torch
from conftest import TINY, codec_conf, flite, random_chunks, train_generator

from espnet_almtok.model.codec import ALMTokenizer
from espnet_almtok.model.semantic_prior import save_codebooks
from espnet_almtok.prior.features import LogMelFeatures
from espnet_almtok.prior.kmeans import residual_kmeans

pytestmark = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite is needed (tools/setup.sh)"
)

FS = 16000
CHUNK = 6400  # the tiny configs' chunk_length
STEPS = 250  # within the tiny configs' adversarial_start_step: mel + aux losses
SENTENCES = [  # Harvard sentences, none of them in the recipe's corpus
    "the stale smell of old beer lingers",
    "a cup of sugar makes sweet fudge",
    "the wide road shimmered in the hot sun",
    "we talked of the side show in the circus",
    "the young girl gave no clear response",
    "the meal was cooked before the bell rang",
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clips")
    train = [flite(tmp, v, s, "float32") for v in ("slt", "rms") for s in SENTENCES[:4]]
    unseen = [flite(tmp, "awb", s, "float32") for s in SENTENCES[4:]]
    return train, unseen


def train(codec: ALMTokenizer, clips, stage: int, steps: int = STEPS, seed: int = 0):
    """Generator steps within the tiny configs' mel-only warm-up."""
    assert steps <= codec.adversarial_start_step
    train_generator(codec, clips, TINY[stage], steps, CHUNK, seed)


@pytest.fixture(scope="module")
def best_constant(stage1, clips) -> torch.Tensor:
    """The best single output: one waveform fitted to all chunks at once."""
    mel_loss, steps = stage1.mel_loss, 400
    rng = np.random.default_rng(1)
    const = torch.nn.Parameter(0.01 * torch.randn(1, 1, CHUNK))
    opt = torch.optim.Adam([const], lr=1e-2)
    for _ in range(steps):
        x = random_chunks(clips[0], 8, CHUNK, rng)[:, None]
        loss = mel_loss(const.expand_as(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return const.detach()


def reconstruct(codec: ALMTokenizer, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return codec.generator(x[:, None], codec.generator.inference_window)[0]


@pytest.fixture(scope="module")
def stage1(clips):
    torch.manual_seed(0)
    codec = ALMTokenizer(**codec_conf(TINY[1]))
    train(codec, clips[0], stage=1)
    return codec


@pytest.fixture(scope="module")
def held_out(clips):
    """Non-overlapping chunks of the unseen clips."""
    return torch.from_numpy(
        np.stack(
            [
                x[i : i + CHUNK]
                for x in clips[1]
                for i in range(0, len(x) - CHUNK, CHUNK)
            ]
        )
    )


def check_follows_input(codec, held_out, best_constant):
    """Outputs follow their inputs: clearly closer to their own than to others'."""
    y = reconstruct(codec, held_out)
    x = held_out[:, None]
    mel = codec.mel_loss
    own = mel(y, x).item()
    # Scored against the reconstruction of another input: for a codec whose
    # output ignores its input (the failure this guards) this equals ``own``.
    others = mel(y.roll(1, 0), x).item()
    constant = mel(best_constant.expand_as(x), x).item()
    print(f"mel distance: own {own:.3f}, others {others:.3f}, constant {constant:.3f}")
    assert own < 0.7 * others, (own, others)
    assert own < 0.7 * constant, (own, constant)


def test_stage1_autoencoder_follows_its_input(stage1, held_out, best_constant):
    check_follows_input(stage1, held_out, best_constant)


def test_stage2_uses_many_codes_and_follows_its_input(
    stage1, clips, held_out, best_constant, tmp_path
):
    train_clips = clips[0]
    feats = np.concatenate([LogMelFeatures()(torch.from_numpy(x)) for x in train_clips])
    books, _ = residual_kmeans(feats, None, n_q=3, codebook_size=64)
    save_codebooks(tmp_path / "codebooks.npz", books, "logmel-fallback", 64)
    torch.manual_seed(0)
    codec = ALMTokenizer(
        **codec_conf(TINY[2], codebook_file=str(tmp_path / "codebooks.npz"))
    )
    # Stage 2 as the recipe runs it: patchify/unpatchify from stage 1,
    # patchify frozen.
    for part in ("patchify", "unpatchify"):
        getattr(codec.generator, part).load_state_dict(
            getattr(stage1.generator, part).state_dict()
        )
    codec.generator.patchify.requires_grad_(False)
    frozen = {k: v.clone() for k, v in codec.generator.patchify.state_dict().items()}
    train(codec, train_clips, stage=2)

    for k, v in codec.generator.patchify.state_dict().items():
        assert torch.equal(v, frozen[k]), f"frozen patchify changed: {k}"
    check_follows_input(codec, held_out, best_constant)
    with torch.no_grad():
        codes = torch.cat([codec.encode(torch.from_numpy(x)) for x in clips[1]], -1)
    used = [len(torch.unique(layer)) for layer in codes]
    print(f"codes used per layer on {codes.size(-1)} unseen tokens: {used}")
    assert min(used) > 8, f"codes used per layer on unseen speech: {used}"
