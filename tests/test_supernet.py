"""nasnav.model.supernet and nasnav.train.modules: forward, extraction equivalence, exported source, warm start,
path sampling, and the acceptance test that a training step leaves pruned components untouched."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasnav.model import layers
from nasnav.model.supernet import Supernet, build_network, network_source, warm_start
from nasnav.space import Arch, SearchSpace, Stage
from nasnav.train.modules import SupernetModule, augment_batch, make_optimizer, path_sampler

pytestmark = pytest.mark.usefixtures("single_thread")

LAYERS_SRC = Path(layers.__file__).read_text()


def random_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    archs.append(space.largest())
    return archs


# ---- supernet forward / extract ------------------------------------------------------------
def test_forward_random_archs(kind_space, nas):
    kind, space = kind_space
    net = nas.make_supernet(space, kind)
    x = nas.make_input(kind, n=5)
    net.train()
    for arch in random_archs(space, 8):
        out = net(x, arch)
        assert out.shape == (5, 3)
        assert torch.isfinite(out).all()


def test_supernet_holds_every_original_component(nas):
    space = nas.image_space().prune("s1", "conv3x3").pin("s3", "conv5x5")
    net = Supernet(space, "image", 1, 3)
    for st, stage in zip(net.stages, space.stages):
        assert list(st.ops.keys()) == list(stage.candidates)
    assert net.space == space.unpruned()
    assert len(net.component_parameters(0, "conv3x3")) > 0
    assert net.component_parameters(0, "skip") == []


def test_forward_is_stateless(nas):
    """forward(x, arch) depends on arch only: A, B, A in eval mode gives A's output twice."""
    space = nas.image_space()
    net = nas.make_supernet(space, "image").eval()
    x = nas.make_input("image")
    a, b = random_archs(space, 2, seed=3)[:2]
    with torch.no_grad():
        ya = net(x, a)
        net(x, b)
        assert torch.equal(net(x, a), ya)


def test_extract_matches_supernet(kind_space, nas):
    kind, space = kind_space
    net = nas.make_supernet(space, kind).eval()
    x = nas.make_input(kind, n=7, seed=1)
    archs = random_archs(space, 20, seed=11)
    assert any(max(len(c) for c in a.choices) > 1 for a in archs)  # `any` stages with several components
    with torch.no_grad():
        for arch in archs:
            sub = net.extract(arch)
            ref = net(x, arch)
            out = sub(x)
            assert torch.allclose(out, ref, atol=1e-5), str(arch)
            # extraction copies: the standalone network shares no storage with the supernet
            sub_ptrs = {p.data_ptr() for p in sub.parameters()}
            assert not sub_ptrs & {p.data_ptr() for p in net.parameters()}


def test_extract_mode_is_consistent(nas):
    space = nas.image_space()
    net = nas.make_supernet(space, "image").eval()
    arch = space.largest()
    sub = net.extract(arch)
    assert {m.training for m in sub.modules()} == {False}
    from nasnav.score.evaluate import count_flops

    count_flops(sub, nas.KIND_INPUT["image"][1])
    x = nas.make_input("image")
    with torch.no_grad():
        assert torch.allclose(sub(x), net(x, arch), atol=1e-5)


def test_extract_params_are_the_path_only(nas):
    space = nas.image_space()
    net = Supernet(space, "image", 1, 3)
    arch = space.parse("maxpool3x3/conv1x1+skip/conv5x5")
    sub = net.extract(arch)
    expected = sum(p.numel() for m in net.path_modules(arch) for p in m.parameters())
    assert sum(p.numel() for p in sub.parameters()) == expected
    assert sum(p.numel() for p in sub.parameters()) < sum(p.numel() for p in net.parameters())


def test_extract_is_independent_copy(nas):
    space = nas.image_space()
    net = nas.make_supernet(space, "image").eval()
    arch = space.largest()
    sub = net.extract(arch)
    x = nas.make_input("image")
    with torch.no_grad():
        before = net(x, arch).clone()
        for p in sub.parameters():
            p.add_(1.0)
        assert torch.equal(net(x, arch), before)


def exec_source(src: str) -> nn.Module:
    ns: dict = {"torch": torch, "nn": nn}
    exec(compile(LAYERS_SRC, "layers_copy.py", "exec"), ns)
    exec(compile(src, "model.py", "exec"), ns)
    return ns["build"]()


@pytest.mark.parametrize("seed", [0, 1])
def test_build_network_and_source_agree(kind_space, seed, nas):
    kind, space = kind_space
    in_ch, shape = nas.KIND_INPUT[kind]
    net = nas.make_supernet(space, kind, seed=seed).eval()
    for arch in random_archs(space, 4, seed=seed):
        built = build_network(space, arch, kind, in_ch, 3)
        src = network_source(space, arch, kind, in_ch, 3)
        from_src = exec_source(src)
        extracted = net.extract(arch)
        assert repr(built) == repr(from_src) == repr(extracted)
        shapes = {k: v.shape for k, v in extracted.state_dict().items()}
        assert {k: v.shape for k, v in built.state_dict().items()} == shapes
        # the extracted weights load strictly into the source-built network and reproduce its outputs
        from_src.load_state_dict(extracted.state_dict(), strict=True)
        built.load_state_dict(extracted.state_dict(), strict=True)
        from_src.eval()
        built.eval()
        x = nas.make_input(kind, n=4, seed=seed)
        with torch.no_grad():
            ref = net(x, arch)
            assert torch.allclose(from_src(x), ref, atol=1e-5)
            assert torch.allclose(built(x), ref, atol=1e-5)


def test_network_source_mentions_stages(nas):
    space = nas.image_space()
    arch = space.parse("conv3x3/conv1x1+skip/dilconv3x3")
    src = network_source(space, arch, "image", 1, 10)
    assert src.startswith("def build():")
    assert "# stage 's2': 'conv1x1+skip'" in src  # names as repr(): a comment cannot be ended from a name
    assert "import" not in src  # relies only on layers.py's names
    compile(src, "model.py", "exec")


def test_build_network_is_fresh(nas):
    """build_network initialises from scratch: two calls under different seeds differ."""
    space = nas.image_space()
    arch = space.largest()
    torch.manual_seed(0)
    a = build_network(space, arch, "image", 1, 3)
    torch.manual_seed(1)
    b = build_network(space, arch, "image", 1, 3)
    assert not torch.equal(a.stem[0].weight, b.stem[0].weight)


def test_warm_start_loads_matching_tensors(nas):
    old_space = nas.image_space()
    old = nas.make_supernet(old_space, "image", seed=0)
    # new space: stage s2 wider (shapes change there and in s3's transition) and a new s1 component
    stages = list(old_space.stages)
    stages[0] = Stage("s1", ("conv3x3", "maxpool3x3", "skip", "conv5x5"), channels=4)
    stages[1] = Stage("s2", stages[1].candidates, select="any", max_active=2, channels=12, stride=2)
    new_space = SearchSpace(tuple(stages), stem_channels=4)
    torch.manual_seed(123)
    new = Supernet(new_space, "image", 1, 3)
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    old_state = old.state_dict()
    missing = warm_start(new, old_state)
    state = new.state_dict()
    for k, v in state.items():
        if k in old_state and old_state[k].shape == v.shape:
            assert torch.equal(v, old_state[k]), k
            assert k not in missing
        else:
            assert torch.equal(v, fresh[k]), k
            assert k in missing
    assert any(k.startswith("stages.0.ops.conv5x5.") for k in missing)
    assert any(k.startswith("stages.1.") for k in missing)
    assert "stem.0.weight" not in missing
    assert missing == sorted(missing)
    # same space: everything loads
    same = Supernet(old_space, "image", 1, 3)
    assert warm_start(same, old_state) == []
    for k, v in same.state_dict().items():
        assert torch.equal(v, old_state[k])


# ---- path sampler ---------------------------------------------------------------------------
def sampler_space() -> SearchSpace:
    return SearchSpace(
        stages=(
            Stage("a", ("c1", "c2", "c3", "c4"), pruned=("c2",)),  # 3 active
            Stage("b", ("p", "q", "r", "s"), select="any", max_active=2, pruned=("s",)),
            Stage("c", ("u", "v", "w", "x", "y")),  # 5 active
            Stage("d", ("m", "n"), pinned=("n",)),
        )
    )


def test_fair_sampler_blocks():
    space = sampler_space()
    sample = path_sampler(space, "fair", seed=4)
    archs = [sample(step) for step in range(60)]
    for i, stage in enumerate(space.stages):
        if stage.select != "one" or stage.pinned is not None:
            continue
        n = len(stage.active)
        for start in range(0, 60 - n + 1, n):
            block = [archs[s].choices[i] for s in range(start, start + n)]
            assert sorted(block) == sorted((c,) for c in stage.active), (stage.name, start, block)
    assert all(a.choices[3] == ("n",) for a in archs)
    assert all(space.contains(a) for a in archs)
    # not the same order in every block (a fresh permutation per block)
    blocks = {tuple(a.choices[2] for a in archs[s : s + 5]) for s in range(0, 60, 5)}
    assert len(blocks) > 1


@pytest.mark.parametrize("mode", ["fair", "uniform"])
def test_sampler_deterministic_and_respects_pruning(mode):
    space = sampler_space()
    s1, s2, s3 = path_sampler(space, mode, 7), path_sampler(space, mode, 7), path_sampler(space, mode, 8)
    seq = [s1(i) for i in range(200)]
    assert seq == [s2(i) for i in range(200)]
    assert seq != [s3(i) for i in range(200)]
    assert s1(17) == seq[17]  # a function of the step, not of call order
    used = Counter((i, c) for a in seq for i, ch in enumerate(a.choices) for c in ch)
    assert used[(0, "c2")] == 0 and used[(1, "s")] == 0 and used[(3, "m")] == 0
    for i, stage in enumerate(space.stages):
        for c in stage.active:
            assert used[(i, c)] > 0, (stage.name, c)
    assert all(space.contains(a) for a in seq)


def test_sampler_unknown_mode():
    with pytest.raises(ValueError, match="supernet.sampler: 'greedy'"):
        path_sampler(sampler_space(), "greedy", 0)


# ---- one optimisation step: pruned / unsampled components untouched ------------------------
OPTIM = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-3, "schedule": "constant"}


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def component_keys(net: Supernet, stage: int, component: str) -> list[str]:
    prefix = f"stages.{stage}.ops.{component}."
    return [k for k in net.state_dict() if k.startswith(prefix)]


def test_training_step_leaves_pruned_and_unsampled_components_untouched(nas):
    torch.manual_seed(0)
    space = nas.image_space().prune("s1", "conv3x3").prune("s2", "sepconv3x3")
    module = SupernetModule(space.to_dict(), "image", 1, 3, OPTIM, sampler="fair", seed=0)
    net = module.net
    opt = make_optimizer(net.parameters(), OPTIM)
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 5e-3
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)

    net.train()
    archs = []
    for step in range(3):
        arch = module._sample(step)
        archs.append(arch)
        assert space.contains(arch)
        before = snapshot(net)
        opt.zero_grad()
        loss = F.cross_entropy(module._logits(x, "train") if step == 0 else net(x, arch), y)
        loss.backward()
        opt.step()
        after = snapshot(net)
        for i, stage in enumerate(net.space.stages):
            for c in stage.candidates:
                keys = component_keys(net, i, c)
                if c in arch.choices[i]:
                    if keys:
                        assert any(not torch.equal(before[k], after[k]) for k in keys), (step, stage.name, c)
                    continue
                for k in keys:  # parameters AND BatchNorm buffers, bit for bit
                    assert torch.equal(before[k], after[k]), f"step {step}: {k} changed but {c} was not sampled"
        # the shared parts (stem, head) did train
        assert not torch.equal(before["stem.0.weight"], after["stem.0.weight"])
        assert not torch.equal(before["head.fc.weight"], after["head.fc.weight"])
    # fair sampling: consecutive steps trained different components of s1, so the momentum of an
    # earlier step's component must not have moved it later
    assert archs[0].choices[0] != archs[1].choices[0]


def test_pruned_components_untouched_over_many_steps(nas):
    torch.manual_seed(1)
    space = nas.image_space().prune("s1", "conv3x3").prune("s3", "conv5x5")
    module = SupernetModule(space.to_dict(), "image", 1, 3, OPTIM, sampler="uniform", seed=2)
    net = module.net
    pruned_keys = component_keys(net, 0, "conv3x3") + component_keys(net, 2, "conv5x5")
    assert pruned_keys
    before = {k: net.state_dict()[k].clone() for k in pruned_keys}
    opt = make_optimizer(net.parameters(), OPTIM)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    net.train()
    for step in range(6):
        opt.zero_grad()
        F.cross_entropy(net(x, module._sample(step)), y).backward()
        opt.step()
    for k in pruned_keys:
        assert torch.equal(net.state_dict()[k], before[k]), k


def test_make_optimizer_variants():
    p = [nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(p, {**OPTIM, "optimizer": "adam"}), torch.optim.Adam)
    assert isinstance(make_optimizer(p, {**OPTIM, "optimizer": "adamw"}), torch.optim.AdamW)
    sgd = make_optimizer(p, {**OPTIM, "momentum": 0.0})
    assert sgd.defaults["nesterov"] is False and sgd.defaults["lr"] == 0.1


def test_module_round_trips_space_and_hparams(nas):
    space = nas.image_space().prune("s1", "skip")
    module = SupernetModule(space.to_dict(), "image", 1, 3, OPTIM, seed=5, step_offset=10)
    assert module.space == space
    assert module.hparams.step_offset == 10
    # training uses step + offset
    assert module._logits(nas.make_input("image", n=4), "train").shape == (4, 3)
    assert module._sample(10) == path_sampler(space, "fair", 5)(10)


# ---- augmentation ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 3, 8, 9), (5, 2, 16)])
def test_augment_batch_preserves_shape_and_shifts(shape):
    torch.manual_seed(0)
    x = torch.rand(shape) + 0.5  # strictly positive, so zero fill is visible
    out = augment_batch(x, 2)
    assert out.shape == x.shape and out.dtype == x.dtype
    # every sample is a zero-filled shift of its input by at most 2 cells per axis
    spatial = len(shape) - 2
    for i in range(shape[0]):
        found = False
        shifts = [(a, b) for a in range(-2, 3) for b in range(-2, 3)] if spatial == 2 else [(a,) for a in range(-2, 3)]
        for s in shifts:
            ref = torch.zeros_like(x[i])
            src = [slice(None)]
            dst = [slice(None)]
            for d, k in enumerate(s):
                n = shape[2 + d]
                dst.append(slice(max(0, -k), n - max(0, k)))
                src.append(slice(max(0, k), n - max(0, -k)))
            ref[tuple(dst)] = x[i][tuple(src)]
            if torch.equal(out[i], ref):
                found = True
                break
        assert found, f"sample {i} is not a shift of its input"


def test_augment_batch_noop_cases():
    x = torch.randn(4, 6)
    assert augment_batch(x, 2) is x
    y = torch.randn(2, 1, 4, 4)
    assert augment_batch(y, 0) is y


def test_lightning_fit_leaves_pruned_components_untouched(nas):
    """The same property through a real Lightning fit (its zero_grad, clipping and cosine schedule)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    space = nas.image_space().prune("s1", "conv3x3").prune("s2", "conv1x1")
    optim = {**OPTIM, "schedule": "cosine"}
    module = SupernetModule(space.to_dict(), "image", 1, 3, optim, sampler="fair", seed=0)
    pruned_keys = component_keys(module.net, 0, "conv3x3") + component_keys(module.net, 1, "conv1x1")
    before = snapshot(module.net)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 3, (32,), generator=g))
    trainer = pl.Trainer(
        max_steps=4,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=5.0,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(data, batch_size=8))
    assert trainer.global_step == 4
    after = snapshot(module.net)
    for k in pruned_keys:
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["stem.0.weight"], after["stem.0.weight"])


# ---- in-place distillation (supernet.distill) ------------------------------------------------
def test_largest_path_has_the_most_parameters_and_respects_pruning(nas):
    space = nas.image_space()
    net = Supernet(space, "image", 1, 3)
    n_params = lambda arch: sum(p.numel() for m in net.path_modules(arch) for p in m.parameters())  # noqa: E731
    big = net.largest_path(space)
    assert space.contains(big)
    assert all(n_params(big) >= n_params(a) for a in random_archs(space, 40))
    pruned = space.prune(space.stages[0].name, big.choices[0][0])
    smaller = net.largest_path(pruned)
    assert pruned.contains(smaller) and smaller.choices[0] != big.choices[0]


def test_distill_step_trains_the_largest_and_the_sampled_path_only(nas):
    torch.manual_seed(0)
    space = nas.image_space().prune("s1", "conv3x3")
    module = SupernetModule(space.to_dict(), "image", 1, 3, OPTIM, sampler="fair", seed=0, distill=True)
    module.log = lambda *a, **k: None  # no trainer here: logging is Lightning's business
    net = module.net.train()
    teacher, student = module._teacher, module._sample(0)
    assert teacher == net.largest_path(space) and teacher != student
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    loss = module.training_step((x, y), 0)
    assert torch.isfinite(loss)
    loss.backward()
    for i, stage in enumerate(net.space.stages):
        for c in stage.candidates:
            grads = [p.grad for p in net.component_parameters(i, c)]
            used = c in teacher.choices[i] or c in student.choices[i]
            if used and grads:
                assert any(g is not None and g.abs().sum() > 0 for g in grads), (stage.name, c)
            if not used:
                assert all(g is None for g in grads), f"{stage.name}:{c} got a gradient but was on no path"
    # the sampled path learns from the teacher's outputs, not from the labels: with the teacher's
    # logits equal to the student's, the distillation term vanishes
    module._teacher = student
    module.zero_grad()
    same = module.training_step((x, y), 0)
    ce = F.cross_entropy(net(x, student), y)
    assert torch.allclose(same, ce, atol=1e-5)
