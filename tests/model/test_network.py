import pytest
import torch

from im2latex.tokens import END, SPECIALS
from im2latex.model.inputs import to_batch
from im2latex.model.network import MAX_RUN, Im2LatexNet, attend

TOKENS = SPECIALS + ["{", "}", r"\left(", r"\right)", "x", "y", "^", "_", r"\frac"]


def make_net(max_len: int = 24, seed: int = 0, encoder_layers: int = 1) -> Im2LatexNet:
    torch.manual_seed(seed)
    return Im2LatexNet(TOKENS, d_model=32, heads=4, layers=2, ff=64, dropout=0.0, encoder_channels=8, max_len=max_len,
                       encoder_layers=encoder_layers).eval()


def test_shapes():
    net = make_net()
    images, tokens = torch.rand(3, 1, 40, 120), torch.randint(0, len(TOKENS), (3, 9))
    assert net(images, tokens).shape == (3, 9, len(TOKENS))
    assert net.encoder(images).shape == (3, 5 * 15, 32)  # downsampled 8x, flattened


def test_the_decoder_reads_cells_of_one_scale_however_faint_or_heavy_the_ink():
    net = make_net(encoder_layers=0)
    images = torch.rand(2, 1, 40, 120)
    with torch.no_grad():
        for ink in (0.05, 1.0, 20.0):  # the BN statistics of eval mode see features far outside training's range
            cells = net.encoder(images * ink)
            assert torch.allclose(cells.mean(-1), torch.zeros(2, 75), atol=1e-4)
            assert torch.allclose(cells.std(-1, unbiased=False), torch.ones(2, 75), atol=1e-2)


def test_decoder_is_causal():
    net = make_net()
    images, tokens = torch.rand(2, 1, 32, 64), torch.randint(0, len(TOKENS), (2, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % len(TOKENS)
    with torch.no_grad():
        assert torch.allclose(net(images, tokens)[:, :5], net(images, changed)[:, :5], atol=1e-5)


def test_cached_decoding_equals_recomputing_the_prefix():
    net, images = make_net(), torch.rand(3, 1, 32, 96)
    with torch.no_grad():
        assert torch.equal(net.greedy(images, use_cache=True), net.greedy(images, use_cache=False))
        assert torch.equal(net.beam_search(images, 3, use_cache=True), net.beam_search(images, 3, use_cache=False))


def test_beam_width_one_is_greedy():
    for seed in range(3):
        net, images = make_net(seed=seed), torch.rand(4, 1, 32, 96)
        with torch.no_grad():
            assert torch.equal(net.beam_search(images, 1), net.greedy(images))


def balanced(ids: list[int]) -> bool:
    braces = lefts = 0
    for i in ids:
        if i == END:
            break
        token = TOKENS[i]
        braces += (token == "{") - (token == "}")
        lefts += token.startswith(r"\left") - token.startswith(r"\right")
        if braces < 0 or lefts < 0:
            return False
    return braces == 0 and lefts == 0


def test_constraint_never_yields_unbalanced_groups():
    for seed in range(5):
        net = make_net(max_len=12 + seed, seed=seed)
        with torch.no_grad():  # make the untrained network love braces and \left/\right, and hate stopping
            net.head.bias[:] = 0
            for token in ("{", "}", r"\left(", r"\right)"):
                net.head.bias[TOKENS.index(token)] = 8.0 + seed
            net.head.bias[END] = -10.0
            images = torch.rand(6, 1, 32, 64)
            outputs = net.greedy(images).tolist() + net.beam_search(images, 3).tolist()
        assert all(balanced(ids) for ids in outputs), outputs


def test_unconstrained_network_would_be_unbalanced():
    """The check above is not vacuous: without the constraint, the biased network closes what is not open."""
    net = make_net(seed=1)
    with torch.no_grad():
        net.head.bias[:] = 0
        net.head.bias[TOKENS.index("}")] = 20.0
        net.delta.zero_()  # no token opens or closes anything: constraint off
        ids = net.greedy(torch.rand(2, 1, 32, 64)).tolist()
    assert not any(balanced(row) for row in ids)


def test_arrows_are_not_delimiters():
    """\\rightarrow and \\leftarrow must stay free to use: only \\left( ... \\right) pairs are counted."""
    tokens = SPECIALS + [r"\left(", r"\right)", r"\rightarrow", r"\leftarrow", r"\leftrightarrow", r"\left.", r"\right\}"]
    net = Im2LatexNet(tokens, d_model=32, heads=4, layers=1, ff=64, dropout=0.0, encoder_channels=8, max_len=8)
    assert [int(d) for d in net.delta[len(SPECIALS):, 1]] == [1, -1, 0, 0, 0, 1, -1]
    with torch.no_grad():  # a network that wants nothing but \rightarrow still writes it
        net.head.bias[:] = -10.0
        net.head.bias[tokens.index(r"\rightarrow")] = 10.0
        ids = net.eval().greedy(torch.rand(1, 1, 32, 64), 4).tolist()[0]
    assert ids == [tokens.index(r"\rightarrow")] * 4


def test_the_position_table_is_sized_by_the_model_parameter():
    net = Im2LatexNet(TOKENS, d_model=32, heads=4, layers=1, ff=64, dropout=0.0, encoder_channels=8, max_len=8,
                      encoder_positions=20)
    assert net.encoder.pos_y.shape[0] == net.encoder.pos_x.shape[0] == 20
    assert net.encoder(torch.rand(1, 1, 32, 160)).shape == (1, 4 * 20, 32)  # 160 pixels: all 20 positions used


def test_no_token_but_a_brace_runs_longer_than_max_run():
    """A lost model writes `\\qquad \\qquad …` to max_len; decoding cuts such runs, but not nested groups."""
    x, y, brace = TOKENS.index("x"), TOKENS.index("y"), TOKENS.index("{")
    net, images = make_net(max_len=16), torch.rand(2, 1, 32, 64)
    with torch.no_grad():  # a network that wants x, then y, and never to stop, whatever the image
        net.head.weight[:] = 0
        net.head.bias[:] = 0
        net.head.bias[x], net.head.bias[y], net.head.bias[END] = 30.0, 20.0, -30.0
        outputs = net.greedy(images).tolist() + net.beam_search(images, 3).tolist()
        assert all(ids[:MAX_RUN + 2] == [x] * MAX_RUN + [y, x] for ids in outputs), outputs
        net.head.bias[brace] = 40.0  # now it wants to open groups: it opens 8, then must close them
        assert net.greedy(images).tolist() == [[brace] * 8 + [brace + 1] * 8] * 2


@pytest.mark.parametrize("encoder_layers", [0, 1])
def test_a_formula_reads_the_same_alone_as_beside_a_wider_one(encoder_layers):
    """Padding cells are hidden from the decoder and from the encoder's self-attention."""
    for seed in range(3):
        net, g = make_net(seed=seed, encoder_layers=encoder_layers), torch.Generator().manual_seed(seed)
        short, wide = (torch.rand(24, 60, generator=g) * 255).byte(), (torch.rand(40, 400, generator=g) * 255).byte()
        tokens = torch.randint(0, len(TOKENS), (1, 9), generator=g)
        with torch.no_grad():
            alone, both = net(to_batch([short]), tokens)[0], to_batch([short, wide])
            beside = net(both, tokens.expand(2, 9))[0]
            padding_as_ink_free_image = net(both.clamp(min=0), tokens.expand(2, 9))[0]  # what the decoder saw before
        assert (alone - beside).abs().max() < 0.01  # only the cells at the image's edge differ, through convolutions
        assert (alone - padding_as_ink_free_image).abs().max() > 0.05


def test_encoder_self_attention_is_exported_and_reads_as_the_eager_network():
    from im2latex.export import script
    net = make_net(encoder_layers=1)
    assert len(net.encoder.layers) == 1
    scripted = script(net, TOKENS, 200, 4, [13.0], 3)
    images = torch.rand(2, 1, 40, 120)
    with torch.no_grad():
        assert torch.equal(scripted.net.greedy(images), net.greedy(images))
        assert torch.equal(scripted.net.beam_search(images, 3), net.beam_search(images, 3))
        # the layer changes what the decoder reads: a network without it gives other logits
        tokens = torch.randint(0, len(TOKENS), (2, 5))
        assert not torch.allclose(net(images, tokens), make_net(encoder_layers=0)(images, tokens))


def test_a_length_penalty_lets_a_longer_reading_beat_an_early_end():
    """Summed log-probabilities favour ending early: here ending at once costs -1.0, and `x` then the end
    -0.6 - 0.5 = -1.1. Divided by ((5 + length) / 6) ** 1, the longer reading wins (-0.94 against -1.0)."""
    net, x = make_net(), TOKENS.index("x")

    def step(tokens, position, memory, cache, use_cache, group=1):
        logp = torch.full((tokens.shape[0], len(TOKENS)), -10.0)
        for n, last in enumerate(tokens[:, -1].tolist()):
            if position == 0:
                logp[n, END], logp[n, x] = -1.0, -0.6
            else:
                logp[n, END] = -0.5 if last == x else -0.01
        return logp, cache

    net.step = step
    images = torch.rand(1, 1, 32, 64)
    assert net.beam_search(images, 2)[0, 0] == END
    assert net.beam_search(images, 2, length_penalty=1.0)[0, :2].tolist() == [x, END]


def test_the_exported_reader_keeps_its_length_penalty():
    from im2latex.export import check_parity, script
    for seed in range(3):
        net, images = make_net(seed=seed, encoder_layers=0), torch.rand(3, 1, 32, 160)
        scripted = script(net, TOKENS, 200, 4, [13.0], 3, length_penalty=1.5)
        assert scripted.length_penalty == 1.5
        with torch.no_grad():
            assert torch.equal(scripted.net.beam_search(images, 3, length_penalty=1.5),
                               net.beam_search(images, 3, length_penalty=1.5))
            assert check_parity(net, scripted, [images], 3) == 3  # the eager reader takes the file's penalty


def test_every_beam_hypothesis_comes_with_the_confidence_teacher_forcing_gives_it():
    from im2latex.reader import FormulaReader

    net, images = make_net(max_len=30), torch.rand(3, 1, 32, 96)
    reader = FormulaReader(net, TOKENS, 200, 4, [13.0], 3, length_penalty=1.0)
    with torch.no_grad():
        tokens, logp, lengths = net.beams(images, 3, length_penalty=1.0)
        assert tokens.shape[:2] == (3, 3) and logp.shape == lengths.shape == (3, 3)
        assert (tokens == END).any(-1).all()  # a hypothesis cut at max_len lacks the end token teacher forcing adds
        for k in range(3):
            ids = [[t for t in row if t not in (0, 1, END)] for row in tokens[:, k].tolist()]
            forced = torch.tensor(reader.confidence(images, ids))
            assert torch.allclose((logp[:, k] / lengths[:, k]).exp(), forced, atol=1e-4)
        best = net.beam_search(images, 3, length_penalty=1.0)
        ranks = logp / ((5 + lengths) / 6)
        assert torch.equal(best, tokens[torch.arange(3), ranks.argmax(-1)])


def test_training_attention_leaves_cpu_bf16_autocast_and_keeps_its_masks():
    """Under bf16 autocast on the CPU (training) attention runs in float32, the faster kernel there, and agrees with
    the plain product: padding cells hidden by the bias, later positions hidden by the causal mask."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, n, 8).bfloat16() for n in (5, 7, 7))
    bias = torch.zeros(2, 1, 1, 7)
    bias[0, ..., 4:] = float("-inf")  # the first image's last 3 cells are batch padding

    def product(q, k, v, mask):
        return ((q.float() @ k.float().transpose(-2, -1)) / 8 ** 0.5 + mask).softmax(-1) @ v.float()

    causal = torch.zeros(5, 5).masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cross, self_ = attend(q, k, v, bias, 0.0, False), attend(q, q, q, None, 0.0, True)
    assert cross.dtype == self_.dtype == torch.float32
    assert torch.allclose(cross, product(q, k, v, bias), atol=1e-5)
    assert torch.allclose(self_, product(q, q, q, causal), atol=1e-5)
    assert not torch.allclose(cross, product(q, k, v, torch.zeros(2, 1, 1, 7)), atol=1e-2)  # the padding mattered
