import pytest
import torch

from espnet_almtok.model.interleave import interleave, retrieve


@pytest.mark.parametrize("w", [1, 2, 3, 4, 8])
def test_interleave_then_retrieve_is_identity(w):
    frames = torch.randn(2, 5 * w, 7)
    tokens = torch.randn(2, 5, 7)
    seq = interleave(frames, tokens, w)
    assert seq.shape == (2, 5 * (w + 1), 7)
    # The token follows its window of w frames.
    assert torch.equal(seq[:, w], tokens[:, 0])
    assert torch.equal(seq[:, :w], frames[:, :w])
    f, t = retrieve(seq, w)
    assert torch.equal(f, frames)
    assert torch.equal(t, tokens)


def test_interleave_rejects_partial_windows():
    with pytest.raises(ValueError, match="windows"):
        interleave(torch.randn(1, 7, 3), torch.randn(1, 2, 3), 4)
    with pytest.raises(ValueError, match="multiple"):
        retrieve(torch.randn(1, 7, 3), 4)
