"""SparCL's mechanisms on their own (sparcl.md §2-§6, §9, §12): masks, schedule, DDR, DGM, buffer, FLOPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from clstudio.engine.models.backbones import create_backbone
from clstudio.engine.replay import ReservoirBuffer
from clstudio.engine.sparcl.ddr import DataRemoval, ForgettingStats, removal_stages
from clstudio.engine.sparcl.dgm import GradientMasks
from clstudio.engine.sparcl.flops import dense_cost, iteration_cost, layer_macs
from clstudio.engine.sparcl.masks import (
    MaskSet,
    TdmStep,
    conv_sparsity,
    coverage,
    expand,
    shrink,
    sparse_layers,
    tdm_schedule,
)
from clstudio.engine.training.rehearsal import masked_head_ce


@pytest.fixture(scope="module")
def cifar_resnet():
    return create_backbone("resnet18_cifar", "random").model


# --- which layers -------------------------------------------------------------------------------------------
def test_mask_coverage_is_exactly_the_16_block_3x3_convs(cifar_resnet):
    layers = sparse_layers(cifar_resnet)
    expected = {f"layer{i}.{j}.conv{k}" for i in range(1, 5) for j in range(2) for k in (1, 2)}
    assert set(layers) == expected
    n_sparse = sum(m.weight.numel() for m in layers.values())
    n_conv = sum(m.weight.numel() for m in cifar_resnet.modules() if isinstance(m, nn.Conv2d))
    assert (n_sparse, n_conv) == (10_985_472, 11_159_232)  # spec §2
    assert sum(p.numel() for p in cifar_resnet.parameters()) + 512 * 10 + 10 == 11_173_962  # 11.17M with a 10-way head


@pytest.mark.parametrize("s, printed", [(0.75, 0.7383), (0.90, 0.8860), (0.95, 0.9352)])
def test_one_shot_prune_gives_the_printed_conv_sparsity(s, printed):
    model = create_backbone("resnet18_cifar", "random").model
    masks = MaskSet(model)
    masks.prune_to(s)
    assert conv_sparsity(model) == pytest.approx(printed, abs=5e-4)
    for name in masks.sparsity():
        weight = masks.layers[name].weight
        zeros, n = int((weight == 0).sum()), weight.numel()
        # np.percentile interpolates at position s·(n−1) and ties go: the count is within one of s·n
        assert abs(zeros - s * n) < 1


def test_dense_layers_are_never_masked(cifar_resnet):
    masks = MaskSet(cifar_resnet)
    names = {n for n, m in cifar_resnet.named_modules() if isinstance(m, nn.Conv2d)}
    assert "conv1" in names and "conv1" not in masks.masks  # stem
    assert all("shortcut" not in n for n in masks.masks)


# --- shrink / expand ----------------------------------------------------------------------------------------
def test_shrink_keeps_strictly_more_important_weights_only():
    g = torch.Generator().manual_seed(1)
    imp = torch.rand(40, 30, generator=g)
    mask = torch.ones(40, 30, dtype=torch.bool)
    out = shrink(mask, imp, 0.76)
    assert (~out).sum() >= 0.76 * imp.numel()
    assert imp[out].min() > imp[~out].max()  # no dropped entry outranks a kept one
    q = np.percentile(imp.numpy(), 76)
    assert torch.equal(out, torch.from_numpy(imp.numpy() > q))  # the same rule as np.percentile, linear


def test_shrink_prunes_ties_at_the_threshold():
    imp = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0])
    out = shrink(torch.ones(8, dtype=torch.bool), imp, 0.5)  # percentile 1.0: all three 1.0 go
    assert out.tolist() == [False, False, False, False, False, True, True, True]


def test_expand_budget_seeded_choice_and_uniformity():
    n = 1000
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:200] = True  # 800 zeros
    grown = expand(mask, 0.75, torch.Generator().manual_seed(3))
    zeros = int((~grown).sum())
    assert 0.75 * n <= zeros < 0.75 * n + 1
    assert grown[:200].all()  # kept entries stay
    # the choice is a seeded uniform permutation of the zero positions
    zero_pos = torch.nonzero(~mask).flatten()
    pick = zero_pos[torch.randperm(800, generator=torch.Generator().manual_seed(3))[:50]]
    assert torch.equal(torch.nonzero(grown & ~mask).flatten().sort().values, pick.sort().values)
    # and statistically uniform: every zero position is picked ≈ 50/800 of the time
    counts = torch.zeros(n)
    g = torch.Generator().manual_seed(4)
    for _ in range(800):
        counts += (expand(mask, 0.75, g) & ~mask).float()
    freq = counts[200:] / 800
    assert abs(float(freq.mean()) - 50 / 800) < 1e-6
    assert float(freq.std()) < 0.02  # binomial sd ≈ 0.0086; a biased sampler would be far wider


def test_mask_update_grows_zero_weights_and_keeps_them_masked_between_updates():
    torch.manual_seed(0)
    conv_model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3))
    masks = MaskSet(conv_model)
    assert set(masks.masks) == {"1", "2"}  # the stem (first conv) stays dense
    masks.prune_to(0.75)
    before = {k: v.clone() for k, v in masks.masks.items()}
    grads = {k: torch.randn_like(m.weight) * masks.masks[k] for k, m in masks.layers.items()}
    masks.update(TdmStep(0.76, 0.75), grads, 0.5, torch.Generator().manual_seed(0))
    for k, m in masks.layers.items():
        grown = masks.masks[k] & ~before[k]
        assert grown.any()
        assert (m.weight[grown] == 0).all()  # grown weights start at exactly 0
        n = m.weight.numel()
        assert 0.75 * n <= int((~masks.masks[k]).sum()) < 0.75 * n + 1


def test_schedule_matches_the_released_script_for_50_epochs():
    plan = tdm_schedule(50, 0.75, every=0.1, stop=0.9, step=0.01)
    assert sorted(plan) == list(range(0, 50, 5))
    assert plan[0] == TdmStep(0.75, 0.74)  # inter-task expansion
    assert plan[5] == TdmStep(0.76, 0.75)
    assert all(plan[e] == TdmStep(0.76, 0.75) for e in range(10, 45, 5))
    assert plan[45] == TdmStep(0.75, None)  # no growth: the mask is final
    short = tdm_schedule(10, 0.9, 0.1, 0.9, 0.01)  # fractions scale to any epoch count
    assert sorted(short) == list(range(10)) and short[9].grow_to is None and short[0].grow_to == pytest.approx(0.89)


# --- DDR ----------------------------------------------------------------------------------------------------
def test_forgetting_events_count_correct_to_incorrect_transitions():
    stats = ForgettingStats(3, never_learned_score=50)
    for correct in ([1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 1]):
        stats.record(np.arange(3), np.array(correct))
    assert stats.scores().tolist() == [2, 50, 0]  # sample 1 never learned: the maximum, so it is kept


def test_ddr_stages_sizes_and_ranking():
    assert removal_stages(50, 0.1, 0.4) == [5, 10, 15, 20]
    n = 10_000
    ddr = DataRemoval(n, 50, 0.3, 0.1, 0.4, seed=0)
    stats = ForgettingStats(n, never_learned_score=50)
    rng = np.random.default_rng(0)
    sizes = []
    for e in range(50):
        idx = ddr.kept
        stats.record(idx, rng.random(len(idx)) < 0.7 + 0.3 * (idx % 3 == 0))
        gone = ddr.maybe_remove(e, stats)
        if len(gone):
            kept_scores = stats.last_scores[ddr.kept]
            assert stats.last_scores[gone].max() <= kept_scores.min()
            assert not np.isin(gone, ddr.kept).any()
        sizes.append(len(ddr.kept))
    assert [sizes[e] for e in (4, 5, 10, 15, 20, 49)] == [10_000, 9_250, 8_500, 7_750, 7_000, 7_000]
    assert sum(sizes) / (50 * n) == pytest.approx(0.775)


def test_ddr_removes_never_learned_samples_only_when_too_few_easier_ones():
    stats = ForgettingStats(10, never_learned_score=50)
    stats.record(np.arange(10), np.array([1] * 3 + [0] * 7))  # 3 learned (score 0), 7 never learned (50)
    ddr = DataRemoval(10, 10, 0.5, 0.1, 0.1, seed=0)  # one stage at epoch 1 removing 5
    gone = ddr.maybe_remove(1, stats)
    assert len(gone) == 5 and {0, 1, 2} <= set(gone.tolist())


# --- DGM ----------------------------------------------------------------------------------------------------
def test_dgm_density_at_refresh_and_subset_between_refreshes():
    conv = nn.Conv2d(16, 16, 3)
    layers = {"c": conv}
    wmask = torch.rand_like(conv.weight) > 0.75  # ≈ 25 % active
    dgm = GradientMasks(layers, gradient_sparsity=0.8, refresh=30)
    n = conv.weight.numel()
    for b in range(61):
        conv.weight.grad = torch.randn_like(conv.weight) * wmask
        dgm.apply(b)
        nz = conv.weight.grad != 0
        if b % 30 == 0:
            assert abs(int(nz.sum()) - 0.2 * n) <= 1  # (1 − gs)·n entries updated
            assert not (nz & ~wmask).any()  # only inside the weight mask
            support = nz.clone()
        else:
            assert not (nz & ~support).any()  # between refreshes: a subset of the refreshed support


def test_dgm_does_nothing_beyond_the_weight_mask_when_gs_below_s():
    conv = nn.Conv2d(4, 4, 3)
    wmask = torch.rand_like(conv.weight) > 0.9
    conv.weight.grad = torch.randn_like(conv.weight) * wmask
    expected = conv.weight.grad.clone()
    GradientMasks({"c": conv}, 0.8, 30).apply(0)
    assert torch.equal(conv.weight.grad, expected)


# --- replay -------------------------------------------------------------------------------------------------
def test_reservoir_fills_then_samples_every_presentation_and_round_trips():
    buf = ReservoirBuffer(10, torch.Generator().manual_seed(0))
    buf.add(1, torch.arange(6), torch.arange(6), torch.randn(6, 2))
    assert len(buf) == 6 and buf.width.tolist() == [2] * 6
    buf.add(2, torch.arange(100), torch.full((100,), 3), torch.randn(100, 4))
    assert len(buf) == 10 and buf.seen == 106 and buf.logits.shape == (10, 4)
    assert (buf.task == 2).sum() >= 5  # later samples replace earlier ones
    again = ReservoirBuffer(10)
    again.load_state(buf.state())
    assert torch.equal(again.item, buf.item) and torch.equal(again.logits, buf.logits) and again.seen == 106
    assert torch.equal(again.sample(5), buf.sample(5))  # the generator state travels too
    assert len(set(buf.sample(10).tolist())) == 10  # without replacement


def test_current_task_cross_entropy_ignores_other_classes():
    logits = torch.randn(4, 6, requires_grad=True)
    y = torch.tensor([2, 3, 2, 3])
    masked_head_ce(logits, y, 2, 4).backward()
    assert (logits.grad[:, :2] == 0).all() and (logits.grad[:, 4:] == 0).all()
    assert (logits.grad[:, 2:4] != 0).all()


# --- FLOPs --------------------------------------------------------------------------------------------------
def _stream_ratio(macs, sparse, s, gs, tasks=10, n=10_000, epochs=50, bs=32):
    """The paper's schedule on the layer shapes: DDR sizes from the stages, 1 stream on task 0, then 3."""
    used = dense = 0.0
    ws, gsp = {k: s for k in sparse}, {k: gs for k in sparse}
    for t in range(tasks):
        streams, kept = (1 if t == 0 else 3), n
        for e in range(epochs):
            kept -= 750 if e in (5, 10, 15, 20) else 0
            used += (kept // bs) * iteration_cost(macs, ws, gsp, bs, streams)
            dense += (n // bs) * dense_cost(macs, bs, streams)
    return dense / used


@pytest.mark.parametrize("s, gs, fig1", [(0.75, 0.80, 5.55), (0.90, 0.92, 12.3), (0.95, 0.96, 23.1)])
def test_flops_ratio_reproduces_the_papers_figure(s, gs, fig1):
    """Split Tiny-ImageNet shapes (64 px, 200 classes) against Fig. 1: within 10 % (spec §9: 5.3 / 12.1 / 21.3)."""
    model = nn.Sequential(create_backbone("resnet18_cifar", "random").model, nn.Linear(512, 200))
    macs = layer_macs(model, 64)
    assert sum(macs.values()) == 4 * 555_417_600 + 512 * 200  # the spec's 555.4M MACs at 32 px, ×4 at 64 px
    sparse = [f"0.{k}" for k in sparse_layers(model[0])]
    assert _stream_ratio(macs, sparse, s, gs) == pytest.approx(fig1, rel=0.10)


def test_flops_dense_layers_pay_full_cost():
    macs = {"stem": 100, "block": 1000}
    assert iteration_cost(macs, {"block": 0.9}, {"block": 0.95}, 1, 1) == 2 * (3 * 100 + (0.2 + 0.05) * 1000)
    assert dense_cost(macs, 2, 3) == 2 * 3 * 1100 * 2 * 3


@pytest.mark.parametrize("name, size", [("efficientnet_lite0", 224), ("resnet18", 224), ("resnet50", 224)])
def test_mask_rule_on_pretrained_backbones_reaches_the_dense_convs(name, size):
    """Dense convs are masked, the stem, depthwise convs and 1×1 projection shortcuts are not; on
    EfficientNet-Lite0 that is ≥ 90 % of the conv weights and ≥ 85 % of the MACs (the old "kernel > 1×1"
    rule masked only its depthwise convs)."""
    model = create_backbone(name, "random").model
    layers = sparse_layers(model)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    stem = next(iter(convs))
    assert stem not in layers
    assert all(m.groups == 1 for m in layers.values())
    assert not any("downsample" in n for n in layers)
    dense_rest = {n for n, m in convs.items() if m.groups == 1 and n != stem and "downsample" not in n}
    assert set(layers) == dense_rest
    reach = coverage(model, layers, layer_macs(model, size))
    conv_share = sum(m.weight.numel() for m in layers.values()) / sum(m.weight.numel() for m in convs.values())
    if name == "efficientnet_lite0":
        assert any(m.groups > 1 for m in convs.values())  # it has depthwise convs, all left dense
        assert conv_share >= 0.90 and reach["masked_mac_share"] >= 0.85
    assert 0.8 < reach["masked_weight_share"] <= conv_share


def test_masks_saved_under_an_older_rule_load_on_their_own_layers(cifar_resnet):
    model = create_backbone("tiny", "random").model
    old = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    only = list(old)[1]
    saved = {f"mask::{only}": torch.zeros_like(old[only].weight, dtype=torch.uint8)}
    masks = MaskSet(model)
    masks.load_state(saved)
    assert list(masks.layers) == [only] and not masks.masks[only].any()


def test_ddr_ranks_at_one_presentation_per_window_by_misses_then_loss():
    """The app's 10 epochs: stages one epoch apart. After one presentation every forgetting score is 0 or
    'never learned'; the removal must still take the lowest-loss correct samples, and the window stays open
    so the next stage sees two presentations (and real forgetting events)."""
    ddr = DataRemoval(8, 10, 0.5, 0.1, 0.4, seed=0)  # stages 1..4, one sample each
    assert ddr.stages == [1, 2, 3, 4] and ddr.keep_window
    stats = ForgettingStats(8, never_learned_score=10)
    loss = np.array([0.9, 0.1, 0.5, 0.3, 2.0, 2.5, 0.05, 1.0])
    stats.record(np.arange(8), np.array([1, 1, 1, 1, 0, 0, 1, 1]), loss)
    assert ddr.maybe_remove(1, stats).tolist() == [6]  # correct and the lowest loss
    assert stats.seen[0] == 1  # not reset: the window goes on
    stats.record(ddr.kept, np.array([0, 1, 1, 1, 0, 0, 1]), loss[ddr.kept])  # sample 0 forgotten once
    assert ddr.maybe_remove(2, stats).tolist() == [1]
    assert stats.scores()[0] == 1 and 0 in ddr.kept


def test_ddr_at_the_papers_epochs_still_resets_its_window():
    ddr = DataRemoval(100, 50, 0.3, 0.1, 0.4, seed=0)
    assert not ddr.keep_window
    stats = ForgettingStats(100, never_learned_score=50)
    stats.record(np.arange(100), np.ones(100), np.linspace(0, 1, 100))
    assert ddr.maybe_remove(5, stats).tolist() == list(range(7))  # all tie on score 0: lowest loss first
    assert stats.seen.sum() == 0
