import numpy as np
import pytest
import torch

from espnet_almtok.model.semantic_distillation import SemanticDistillation
from espnet_almtok.model.semantic_prior import (
    SemanticPriorRVQ,
    load_codebooks,
    residual_search,
    save_codebooks,
    standardize,
)
from espnet_almtok.prior.kmeans import residual_kmeans


@pytest.fixture
def book_file(tmp_path):
    path = tmp_path / "codebooks.npz"
    books = np.random.default_rng(0).standard_normal((3, 16, 8), dtype=np.float32)
    save_codebooks(path, books, "test", 8)
    return path


def test_codebook_file_round_trip(book_file):
    books, meta = load_codebooks(book_file, 3, 16, 8)
    assert books.shape == (3, 16, 8)
    assert meta == {"source": "test", "num_speech": "8"}
    rvq = SemanticPriorRVQ(
        4, n_q=3, codebook_size=16, codebook_dim=8, codebook_file=str(book_file)
    )
    assert torch.allclose(rvq.codebooks, standardize(books))
    # Layer 1 is centred and unit-scale per dimension; the rest keep their
    # scale relative to it, so nearest entries stay those of the file.
    assert torch.allclose(rvq.codebooks[0].mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(rvq.codebooks[0].std(0), torch.ones(8), atol=1e-5)
    ratio = (books[1:] / books[0].std(0)) / rvq.codebooks[1:]
    assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-4)
    # Buffers, not parameters: no optimizer ever sees them.
    assert "codebooks" not in dict(rvq.named_parameters())
    assert "codebooks" in rvq.state_dict()


@pytest.mark.parametrize(
    "n_q,size,dim", [(2, 16, 8), (3, 32, 8), (3, 16, 4)], ids=["n_q", "size", "dim"]
)
def test_codebook_file_of_wrong_shape_is_refused(book_file, n_q, size, dim):
    with pytest.raises(ValueError, match=f"{book_file}.*shape \\(3, 16, 8\\)"):
        SemanticPriorRVQ(
            4,
            n_q=n_q,
            codebook_size=size,
            codebook_dim=dim,
            codebook_file=str(book_file),
        )


def test_bad_codebook_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_codebooks(tmp_path / "missing.npz", 3, 16, 8)
    junk = tmp_path / "junk.npz"
    junk.write_text("not an archive")
    with pytest.raises(ValueError, match="junk.npz"):
        load_codebooks(junk, 3, 16, 8)
    nan = tmp_path / "nan.npz"
    np.savez(nan, codebooks=np.full((3, 16, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        load_codebooks(nan, 3, 16, 8)


def test_quantizer_needs_a_codebook_source():
    with pytest.raises(ValueError, match="codebook_file"):
        SemanticPriorRVQ(4, n_q=3, codebook_size=16, codebook_dim=8)


def test_decode_of_codes_matches_forward():
    torch.manual_seed(0)
    rvq = SemanticPriorRVQ(
        6, n_q=3, codebook_size=16, codebook_dim=8, random_codebooks_for_debugging=True
    )
    h = torch.randn(2, 5, 6)
    z_q, codes, layers, commit, residuals = rvq(h, torch.ones(2, 5, dtype=torch.bool))
    assert codes.shape == (3, 2, 5) and codes.dtype == torch.long
    assert torch.equal(rvq.encode(h), codes)
    assert torch.allclose(rvq.decode(codes), z_q, atol=1e-5)
    assert commit.item() > 0
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        rvq.decode(torch.full((3, 1, 2), 16))
    with pytest.raises(ValueError, match="n_q=3"):
        rvq.decode(torch.zeros(2, 1, 2, dtype=torch.long))


def test_beam_search_finds_nearer_code_sums_than_greedy_search():
    torch.manual_seed(0)
    books, x = torch.randn(3, 64, 8), torch.randn(400, 8)
    residual, greedy = x.clone(), []
    for book in books:
        greedy.append(torch.cdist(residual, book).argmin(-1))
        residual = residual - book[greedy[-1]]
    greedy = torch.stack(greedy)

    def error(codes):
        return (x - sum(book[c] for book, c in zip(books, codes))).pow(2).sum(-1)

    assert torch.equal(residual_search(x, books, 1), greedy)
    errors = [error(residual_search(x, books, b)).mean() for b in (1, 4, 16)]
    assert errors[0] > 1.3 * errors[1] > 1.3 * errors[2]
    # Keeping every path of a layer is the exhaustive search of two layers.
    two = residual_search(x, books[:2], 64)
    pairs = (books[0][:, None] + books[1][None]).flatten(0, 1)
    assert torch.equal(two[0] * 64 + two[1], torch.cdist(x, pairs).argmin(-1))
    assert residual_search(x[:0], books, 4).shape == (3, 0)

    # In the quantizer: the same model, its codes chosen by either search.
    h, valid = torch.randn(2, 50, 6), torch.ones(2, 50, dtype=torch.bool)
    lost = []  # what the three layers together leave
    for beam_size in (1, 16):
        torch.manual_seed(1)
        rvq = SemanticPriorRVQ(
            6,
            n_q=3,
            codebook_size=64,
            codebook_dim=8,
            random_codebooks_for_debugging=True,
            beam_size=beam_size,
        ).eval()
        z_q, codes, layers, _, residuals = rvq(h, valid)
        assert torch.equal(rvq.encode(h), codes)
        assert torch.allclose(rvq.decode(codes), z_q, atol=1e-5)
        lost.append((residuals[-1] - layers[-1]).pow(2).mean())
    assert lost[0] > 1.5 * lost[1]
    with pytest.raises(ValueError, match="beam_size"):
        SemanticPriorRVQ(8, random_codebooks_for_debugging=True, beam_size=0)


def test_residual_kmeans_layers_reduce_error():
    g = np.random.default_rng(0)
    speech = g.standard_normal((600, 4)).astype(np.float32)
    sound = g.standard_normal((600, 4)).astype(np.float32) + 3
    books, usages = residual_kmeans(speech, sound, n_q=3, codebook_size=16)
    assert [u.sum() for u in usages] == [1200] * 3
    assert books.shape == (3, 16, 4)
    # Half the entries sit near the sound features (mean 3), half near speech (0).
    assert books[0, 8:].mean() > 2 > 1 > books[0, :8].mean()
    residual, errors = np.concatenate([speech, sound]), []
    for book in books:
        idx = ((residual[:, None] - book[None]) ** 2).sum(-1).argmin(1)
        residual = residual - book[idx]
        errors.append((residual**2).sum(1).mean())
    assert errors[0] > errors[1] > errors[2]
    with pytest.raises(ValueError, match="cannot give"):
        residual_kmeans(speech[:10], sound, n_q=1, codebook_size=32)


def test_model_file_supplies_codebooks_when_the_kmeans_file_is_gone(
    book_file, tmp_path
):
    args = dict(n_q=3, codebook_size=16, codebook_dim=8)
    trained = SemanticPriorRVQ(4, codebook_file=str(book_file), **args)
    torch.save(trained.state_dict(), tmp_path / "model.pth")
    book_file.unlink()
    # Building from the config elsewhere works; using it unloaded does not.
    rebuilt = SemanticPriorRVQ(4, codebook_file=str(book_file), **args)
    h = torch.randn(1, 5, 4)
    with pytest.raises(FileNotFoundError, match=f"{book_file}.*no model file"):
        rebuilt.encode(h)
    rebuilt.load_state_dict(torch.load(tmp_path / "model.pth"))
    assert torch.equal(rebuilt.encode(h), trained.encode(h))


def test_projected_vectors_are_standardized_so_a_narrow_encoder_still_spreads(
    book_file,
):
    torch.manual_seed(0)
    rvq = SemanticPriorRVQ(
        6, n_q=3, codebook_size=16, codebook_dim=8, codebook_file=str(book_file)
    )
    # A collapsing encoder: every token near one vector, spread 1e-2.
    h = torch.randn(6) + 1e-2 * torch.randn(4, 50, 6)
    valid = torch.ones(4, 50, dtype=torch.bool)
    codes = rvq(h, valid)[1]
    assert min(layer.unique().numel() for layer in codes) >= 5  # of 16; 1 unnormalized
    # Padded positions take no part in the statistics.
    padded = torch.cat([h, torch.full((4, 10, 6), 1e3)], 1)
    valid_padded = torch.cat([valid, torch.zeros(4, 10, dtype=torch.bool)], 1)
    assert torch.equal(rvq(padded, valid_padded)[1][..., :50], codes)
    # Coding uses the running statistics, in training mode too (ESPnet's
    # CodecTokenizer never calls eval()): each token's code is its own.
    for _ in range(500):
        rvq(h, valid)
    coded = rvq.encode(h)
    assert torch.equal(rvq.encode(h[:1]), coded[:, :1])
    rvq.eval()
    assert torch.equal(rvq.encode(h), coded)
    agree = (rvq.encode(h) == codes).float().mean((1, 2))
    assert (agree > 0.9).all(), agree


def test_whitening_lets_every_direction_of_the_encoder_count(tmp_path):
    """Vectors with 99.9 % of their variance in one direction: per-dimension
    standardization reaches few entries; whitening reaches many, its running
    covariance whitens, and a model file carries it (the codes reload equal)."""
    torch.manual_seed(0)
    path = tmp_path / "codebooks.npz"
    save_codebooks(path, np.random.randn(1, 256, 16).astype(np.float32), "test", 128)
    direction = torch.nn.functional.normalize(torch.randn(16), dim=0)
    valid = torch.ones(8, 40, dtype=torch.bool)

    def batch():
        h = 0.03 * torch.randn(8, 40, 16)
        return h + 30 * torch.randn(8, 40, 1) * direction

    def build(whiten):
        return SemanticPriorRVQ(
            16, 1, 256, 16, codebook_file=str(path), whiten_input=whiten
        )

    used = {}
    for whiten in (False, True):
        rvq = build(whiten)
        for _ in range(200):
            rvq(batch(), valid)
        used[whiten] = rvq.encode(batch()).unique().numel()
    assert used[True] >= 3 * used[False], used
    h = batch()[valid]
    white = rvq.whiten(h, torch.ones(len(h), dtype=torch.bool), 0.0)
    cov = torch.cov(white.t())
    assert torch.allclose(cov.diagonal(), torch.ones(16), atol=0.3), cov.diagonal()
    torch.save(rvq.state_dict(), tmp_path / "model.pth")
    rebuilt = build(True)
    rebuilt.load_state_dict(torch.load(tmp_path / "model.pth"))
    h = batch()
    assert torch.equal(rebuilt.encode(h), rvq.encode(h))


def test_running_stats_track_the_data_not_the_batches(book_file):
    """Batches of chunks from one recording each (narrow batches, spread-out
    means): ``running_stats`` keeps the data's variance, so vectors code at the
    scale training saw; batch statistics would keep a tenth of it."""
    from espnet_almtok.model.semantic_prior import fold_in

    torch.manual_seed(0)
    mean, var = torch.zeros(4), torch.ones(4)
    batches = [torch.randn(4) * 3 + 0.3 * torch.randn(40, 4) for _ in range(3000)]
    for i, x in enumerate(batches, 1):
        fold_in(mean, var, x, max(0.01, 1 / i))
    data = torch.cat(batches[-1000:])
    assert torch.allclose(var, data.var(0), rtol=0.25), (var, data.var(0))
    assert (var > 5 * torch.stack([x.var(0) for x in batches]).mean(0)).all()
    rvq = SemanticPriorRVQ(
        6,
        n_q=3,
        codebook_size=16,
        codebook_dim=8,
        codebook_file=str(book_file),
        running_stats=True,
    )
    valid = torch.ones(1, 40, dtype=torch.bool)
    for _ in range(300):
        rvq(torch.randn(6) * 3 + 0.3 * torch.randn(1, 40, 6), valid)
    h = torch.randn(6) * 3 + 0.3 * torch.randn(1, 40, 6)
    # Training codes as coding does: the same statistics, folded in first.
    rvq.train()
    trained_codes = rvq(h, valid)[1]
    assert (trained_codes == rvq.encode(h)).float().mean() > 0.9


def test_pca_dim_keeps_the_codebooks_main_directions_and_loses_less(tmp_path):
    """Entries that vary in two directions of eight: ``pca_dim: 2`` keeps their
    layout (distances between entries), whitened, and three layers of 16
    entries then keep most of a vector's variance, where in eight dimensions
    they keep little. The model file carries the reduced codebooks."""
    torch.manual_seed(0)
    g = np.random.default_rng(0)
    mixing = g.standard_normal((2, 8))
    books = np.stack(
        [g.standard_normal((64, 2)) @ mixing * s for s in (1.0, 0.5, 0.3)]
    ) + 0.01 * g.standard_normal((3, 64, 8))
    path = tmp_path / "codebooks.npz"
    save_codebooks(path, books.astype(np.float32), "test", 32)
    args = dict(n_q=3, codebook_size=64, codebook_dim=8, codebook_file=str(path))
    full = SemanticPriorRVQ(6, **args)
    reduced = SemanticPriorRVQ(6, pca_dim=2, **args)
    assert reduced.codebooks.shape == (3, 64, 2)
    assert torch.allclose(torch.cov(reduced.codebooks[0].t()), torch.eye(2), atol=1e-4)
    layout = [torch.pdist(b.codebooks[0]).log() for b in (full, reduced)]
    assert torch.corrcoef(torch.stack(layout))[0, 1] > 0.9
    valid = torch.ones(4, 50, dtype=torch.bool)
    h = torch.randn(4, 50, 6)
    for rvq in (full, reduced):
        for _ in range(20):
            rvq(h, valid)
    commit = {
        k: rvq.eval()(h, valid)[3].item() for k, rvq in (("8", full), ("2", reduced))
    }
    assert commit["2"] < 0.5 * commit["8"], commit
    torch.save(reduced.state_dict(), tmp_path / "model.pth")
    path.unlink()
    rebuilt = SemanticPriorRVQ(6, pca_dim=2, **args)
    rebuilt.load_state_dict(torch.load(tmp_path / "model.pth"))
    assert torch.equal(rebuilt.encode(h), reduced.encode(h))
    with pytest.raises(ValueError, match="pca_dim must lie in"):
        SemanticPriorRVQ(6, pca_dim=9, **args)


def test_prior_space_maps_features_as_the_centres_were_mapped(book_file):
    books, _ = load_codebooks(book_file, 3, 16, 8)
    rvq = SemanticPriorRVQ(
        4,
        n_q=3,
        codebook_size=16,
        codebook_dim=8,
        codebook_file=str(book_file),
        pca_dim=3,
    )
    # The file's layer-1 centres land on layer 1's entries, white in 3 dims.
    assert torch.allclose(rvq.to_search_space(books[0]), rvq.codebooks[0], atol=1e-5)
    assert torch.allclose(rvq.codebooks[0].std(0), torch.ones(3), atol=1e-5)
    assert torch.allclose(rvq.codebooks[0].mean(0), torch.zeros(3), atol=1e-5)
    # Deeper layers: the linear part only, at their scale relative to layer 1.
    assert torch.allclose(rvq.codebooks[1], books[1] @ rvq.prior_weight, atol=1e-5)
    # The map is derived from the file, never saved: a model file loads anywhere.
    assert "prior_weight" not in rvq.state_dict()


@pytest.mark.parametrize(
    "source, head", [("quantized", True), ("input", True), ("input", False)]
)
def test_distillation_makes_layer1_codes_predict_the_teacher(book_file, source, head):
    """The head's loss reaches the encoder: vectors that ignored the teacher
    come to code its units."""
    books, _ = load_codebooks(book_file, 3, 16, 8)
    torch.manual_seed(0)
    rvq = SemanticPriorRVQ(
        64,
        n_q=3,
        codebook_size=16,
        codebook_dim=8,
        codebook_file=str(book_file),
        running_stats=True,
    )
    distil = SemanticDistillation(8, source=source, head=head)
    h = torch.randn(4, 12, 64)  # fewer tokens than in_proj's inputs: it can fit
    valid = torch.ones(4, 12, dtype=torch.bool)
    # The teacher's frames: near the file's layer-1 centres, at an offset and
    # scale of their own (the head absorbs those).
    units = torch.randint(16, (4, 12))
    target = rvq.to_search_space(2 + 0.3 * books[0][units])

    def mixed():
        """Units per code, summed over codes: the number of units if each
        code stands for one."""
        codes = rvq.encode(h)[0]
        return sum(len(units[codes == c].unique()) for c in codes.unique())

    before = mixed()
    assert head == any(True for _ in distil.parameters())
    opt = torch.optim.Adam([*rvq.parameters(), *distil.parameters()], lr=1e-2)
    losses = []
    for _ in range(300):
        _, _, layers, _, residuals = rvq(h, valid)
        loss = distil(
            {"quantized": layers, "input": residuals}[source][0], target, valid
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1
    if source == "input":
        assert losses[-1] < 0.01 and mixed() < 0.5 * before, (mixed(), before)
    else:  # slower: the estimator moves the input, the entries stay
        assert losses[-1] < 0.4 and mixed() < 0.6 * before, (mixed(), before)
    heads = {"head.weight", "head.bias"} if head else set()
    stats = {f"target_norm.{k}" for k in ("mean", "var", "seen")}
    assert set(distil.state_dict()) == heads | stats
    with pytest.raises(ValueError, match="source must be one of"):
        SemanticDistillation(8, source="layer1")


def test_distillation_needs_the_codebook_file():
    rvq = SemanticPriorRVQ(
        4, n_q=1, codebook_size=4, codebook_dim=8, random_codebooks_for_debugging=True
    )
    with pytest.raises(ValueError, match="codebook_file"):
        rvq.to_search_space(torch.randn(1, 2, 8))


def far_half_quantizer(threshold: float) -> SemanticPriorRVQ:
    """Trainable random codebooks whose second half no vector can reach."""
    torch.manual_seed(0)
    rvq = SemanticPriorRVQ(
        8,
        n_q=2,
        codebook_size=64,
        codebook_dim=8,
        codebook_init="random",
        trainable_codebooks=True,
        dead_code_threshold=threshold,
        usage_decay=0.9,
    )
    rvq.codebooks.data[:, 32:] += 100.0
    return rvq


@pytest.mark.parametrize("threshold", [0.0, 0.05], ids=["off", "on"])
def test_dead_entries_move_onto_the_data(threshold):
    rvq = far_half_quantizer(threshold)
    before = rvq.codebooks.detach().clone()
    rvq.train()
    for _ in range(60):
        rvq(torch.randn(4, 20, 8), torch.ones(4, 20, dtype=torch.bool))
    rvq.eval()
    codes = rvq.encode(torch.randn(16, 50, 8))
    used = [len(codes[k].unique()) for k in range(2)]
    far = rvq.codebooks.detach()[:, 32:]
    if threshold == 0:
        # Never chosen, so never moved: the codebook loss alone leaves them.
        assert torch.equal(far, before[:, 32:])
        assert max(used) <= 32
    else:
        assert far.abs().max() < 10
        assert min(used) > 48
    assert ("usage" in rvq.state_dict()) == (threshold > 0)


def test_dead_entry_replacement_needs_trainable_codebooks_and_skips_padding():
    with pytest.raises(ValueError, match="trainable_codebooks"):
        SemanticPriorRVQ(
            8,
            n_q=2,
            codebook_size=64,
            codebook_dim=8,
            codebook_init="random",
            dead_code_threshold=0.05,
        )
    # A threshold above one use's share (0.1): chosen entries are due too.
    rvq = far_half_quantizer(0.5)
    rvq.usage.fill_(0.0)
    h = torch.randn(1, 20, 8)
    valid = torch.zeros(1, 20, dtype=torch.bool)
    valid[:, :10] = True
    rvq.train()
    codes = rvq(h, valid)[1]
    # One entry per real residual, none from padding; the rest wait. Entries
    # the batch chose stay (usage 0.1 a use), however low their usage.
    replaced = rvq.usage == 1.0
    assert replaced.sum(1).tolist() == [10, 10]
    assert torch.allclose(
        rvq.usage[~replaced].view(2, -1).sum(1), torch.full((2,), 1.0)
    )
    assert not replaced.gather(1, codes[:, 0, :10]).any()
