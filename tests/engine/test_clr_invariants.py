"""shared/specs/clr.md §9 items 1-6 on real torchvision architectures (weights not needed for these)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from clstudio.engine.models.clr import CLRConv, CLRLayer, apply_clr, batchnorms, clr_layers

from .helpers import logits, make_strategy, tensor_hash, train_steps

torch.backends.mkldnn.deterministic = True  # bit-identical reruns of the same conv on CPU


def _frozen_conv_weights(strategy) -> list[torch.Tensor]:
    return [m.frozen.weight for m in strategy.features.modules() if isinstance(m, CLRConv)] + [
        m.weight for m in strategy.features.modules() if isinstance(m, nn.Conv2d) and not _is_clr(strategy, m)
    ]


def _is_clr(strategy, conv) -> bool:
    return any(layer.conv is conv for layer in clr_layers(strategy.features).values())


@pytest.mark.parametrize("arch, wrapped", [("resnet18", 17), ("resnet50", 17)])
def test_layer_shape_and_placement(arch, wrapped):
    net = getattr(torchvision.models, arch)(weights=None)
    k1 = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    names = apply_clr(net)
    assert len(names) == wrapped  # stem 7×7 + every 3×3; no 1×1 (incl. downsample) is wrapped
    assert "conv1" in names and not any(n in names for n in k1)
    for name in names:
        block = net.get_submodule(name)
        layer = block.clr.conv
        c = block.frozen.out_channels
        assert layer.weight.shape == (c, 1, 3, 3)
        assert layer.groups == c and layer.bias is None
        assert layer.stride == (1, 1) and layer.padding == (1, 1)
        x = torch.randn(2, c, 9, 7)
        assert block.clr(x).shape == x.shape


def test_clr_full_wraps_every_conv():
    net = torchvision.models.resnet18(weights=None)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    assert len(apply_clr(net, full=True)) == n_convs == 20


def test_layer_identity_at_init():
    layer = CLRLayer(16)
    x = torch.randn(3, 16, 11, 13)
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_whole_network_identity_at_init(arch):
    from clstudio.engine.models.backbones import create_backbone

    reference = create_backbone(arch, weights="random")
    # Give BN non-trivial statistics so the check is not vacuous.
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for bn in batchnorms(reference.model).values():
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) + 0.5)
    import copy

    strategy = make_strategy("clr", arch)
    strategy.features.load_state_dict(_wrap_keys(reference.model, strategy.features), strict=True)
    strategy.features.eval()
    reference.model.eval()
    # Same memory format on both sides (the strategy runs channels_last), so only the CLR layers differ.
    reference.model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(strategy.features(x), copy.deepcopy(reference.model)(x))


def _wrap_keys(plain: nn.Module, wrapped: nn.Module) -> dict[str, torch.Tensor]:
    """Map a plain backbone's state dict onto the CLR-wrapped one (conv.weight → conv.frozen.weight)."""
    target = wrapped.state_dict()
    out = {}
    for k, v in plain.state_dict().items():
        module, _, leaf = k.rpartition(".")
        alt = f"{module}.frozen.{leaf}"
        out[alt if alt in target else k] = v
    for k, v in target.items():
        out.setdefault(k, v)  # the CLR kernels keep their identity init
    return out


@pytest.mark.parametrize("arch, expected", [("resnet18", 49_866), ("resnet50", 108_170)])
def test_trainable_parameter_count(arch, expected):
    strategy = make_strategy("clr", arch)
    strategy.begin_task("t", 10)
    assert strategy.count_trainable() == expected
    trainable = {id(p) for p in strategy.trainable_parameters()}
    everything = list(strategy.features.parameters()) + list(strategy.head.parameters())
    assert all(p.requires_grad == (id(p) in trainable) for p in everything)


def test_gradients_only_on_trainable():
    strategy = make_strategy("clr", "resnet18")
    strategy.begin_task("t", 4)
    strategy.set_train_mode()
    loss = strategy.forward(torch.randn(4, 3, 32, 32)).logsumexp(1).mean()
    loss.backward()
    for conv in _frozen_conv_weights(strategy):
        assert conv.grad is None
    for layer in clr_layers(strategy.features).values():
        assert layer.conv.weight.grad is not None and layer.conv.weight.grad.abs().sum() > 0
    for bn in batchnorms(strategy.features).values():
        assert bn.weight.grad is not None and bn.bias.grad is not None
    assert strategy.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_frozen_weights_bit_identical_after_training(arch):
    strategy = make_strategy("clr", arch)
    before = tensor_hash(_frozen_conv_weights(strategy))
    train_steps(strategy, "a", 5)
    train_steps(strategy, "b", 3, seed=1)
    assert tensor_hash(_frozen_conv_weights(strategy)) == before


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_zero_forgetting_bit_identical_logits(arch):
    strategy = make_strategy("clr", arch)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    train_steps(strategy, "t1", 5)
    first = logits(strategy, "t1", x)
    train_steps(strategy, "t2", 3, seed=1)
    train_steps(strategy, "t3", 4, seed=2)
    after = logits(strategy, "t1", x)
    assert torch.equal(first, after)
    # and training really changed something: the other tasks give other outputs on the same input
    assert not torch.equal(logits(strategy, "t2", x)[:, :3], first[:, :3])


def test_swap_idempotence():
    strategy = make_strategy("clr", "resnet18")
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    train_steps(strategy, "A", 4)
    train_steps(strategy, "B", 4, seed=5)
    a1 = logits(strategy, "A", x)
    b = logits(strategy, "B", x)
    a2 = logits(strategy, "A", x)
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, b)
    # the features' per-task slots equal A's stored state exactly after the swap back
    state = strategy.current_task_state()
    for k, v in strategy.task_states["A"].items():
        assert torch.equal(state[k], v), k


def test_per_task_state_is_only_adapters_bn_and_head():
    strategy = make_strategy("clr", "resnet50")
    train_steps(strategy, "t", 10)
    state = strategy.task_states["t"]
    n_params = sum(
        v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert n_params == 108_170
    backbone = sum(p.numel() for p in strategy.features.parameters())
    assert sum(v.numel() for v in state.values()) < 0.01 * backbone
    assert not any(k.endswith("frozen.weight") for k in state)


def test_order_independence_bit_identical(tmp_path):
    """clr.md §9.7: each task starts from the same anchor, so a task's weights do not depend on which tasks
    came before it. Trained first or second, through the real loop and data, its file holds the same bits."""
    from clstudio.engine.data.synthetic import make_task_folder
    from clstudio.engine.project import Project
    from clstudio.engine.storage import load_tensors

    a = make_task_folder(tmp_path / "stripes", ("horizontal", "vertical"), 12, size=32, seed=1)
    b = make_task_folder(tmp_path / "colours", ("red", "green", "blue"), 12, size=32, seed=2)
    cfg = {"epochs": 3, "lr": 0.01, "patience": 100, "head_warmup": 1}
    weights = {}
    for order in ((a, b), (b, a)):
        p = Project.create(tmp_path / f"p-{order[0].name}", backbone="tiny", config=cfg)
        for folder in order:
            p.add_task(folder)
        p.train_pending()
        weights[order[0].name] = {t["name"]: load_tensors(p.folder / t["weights"])[0] for t in p.tasks}
    first, second = weights["stripes"], weights["colours"]
    for task in ("stripes", "colours"):
        assert first[task].keys() == second[task].keys()
        assert all(torch.equal(first[task][k], second[task][k]) for k in first[task]), task
    # and the two tasks really learned different things
    assert not torch.equal(first["stripes"]["head.bias"][:2], first["colours"]["head.bias"][:2])


def test_l2_penalty_is_lambda_times_unsquared_norms():
    """clr.md §3: CE + λ·Σ‖W‖₂ over the trained tensors (CLR kernels, BN γ and β, head), each norm unsquared —
    not weight decay (which would be ½λ‖W‖²) and not over the frozen convs."""
    strategy = make_strategy("clr", "resnet18", reg_lambda=0.5)
    train_steps(strategy, "t", 4)  # move every trained tensor away from its init
    strategy.activate_task("t")
    trained = [layer.conv.weight for layer in clr_layers(strategy.features).values()]
    for bn in batchnorms(strategy.features).values():
        trained += [bn.weight, bn.bias]
    trained += [strategy.head.weight, strategy.head.bias]
    expected = 0.5 * sum(float(torch.sqrt((w.detach().double() ** 2).sum())) for w in trained)
    penalty = float(strategy.regularization().detach())
    assert penalty == pytest.approx(expected, rel=1e-5)
    squared = 0.5 * sum(float((w.detach().double() ** 2).sum()) for w in trained)
    assert abs(penalty - squared) > 1e-3 * expected  # really the unsquared norm
    assert make_strategy("clr", "resnet18", reg_lambda=0.0).regularization() is None


def test_adapter_lr_gives_the_clr_layers_and_bn_their_own_rate_and_the_head_keeps_lr(tmp_path):
    from clstudio.engine import events as ev
    from clstudio.engine.data.synthetic import make_task_folder
    from clstudio.engine.project import Project

    folder = make_task_folder(tmp_path / "stripes", ("horizontal", "vertical"), 8, size=32, seed=1)
    for adapter_lr, expected in ((0.0, [1e-3]), (1e-4, [1e-4, 1e-3])):
        p = Project.create(tmp_path / f"p{adapter_lr}", backbone="tiny", config={"epochs": 1, "adapter_lr": adapter_lr})
        p.add_task(folder)
        seen: list = []

        def look(event, p=p, seen=seen):  # during the first step: the optimiser and the network in training
            if isinstance(event, ev.StepProgress) and not seen:
                groups = [(g["lr"], {id(x) for x in g["params"]}) for g in p.training_method.optimizer.param_groups]
                head = {id(x) for x in p.strategy.head.parameters()}
                seen.append((groups, head, {id(x) for x in p.strategy.trainable_parameters()}))

        p.train_task("stripes", observers=[look])
        groups, head, trained = seen[0]
        assert [lr for lr, _ in groups] == expected
        assert set().union(*(ids for _, ids in groups)) == trained
        if len(groups) == 2:
            assert groups[1][1] == head and not groups[0][1] & head


def test_bn_and_head_ablation_keeps_every_clr_layer_at_the_identity():
    """adapters=False, the 'BN + head' rung of the ablation: the CLR kernels get no gradient and stay the
    identity, while BN's γ β and the head train."""
    strategy = make_strategy("clr", "resnet18", adapters=False)
    train_steps(strategy, "t", 4)
    strategy.activate_task("t")
    for path, layer in clr_layers(strategy.features).items():
        identity = torch.zeros_like(layer.conv.weight)
        identity[:, 0, 1, 1] = 1.0
        assert torch.equal(layer.conv.weight, identity), path
        assert not layer.conv.weight.requires_grad
    moved = [bn.weight for bn in batchnorms(strategy.features).values()]
    assert any(not torch.equal(w, torch.ones_like(w)) for w in moved)
    full = make_strategy("clr", "resnet18")
    full.begin_task("t", 4)
    kernels = sum(layer.conv.weight.numel() for layer in clr_layers(strategy.features).values())
    assert strategy.count_trainable() == full.count_trainable() - kernels
