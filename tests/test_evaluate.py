"""nasnav.score.evaluate: one-shot scoring without cross-talk, BN recalibration, params / FLOPs / latency."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasnav.config import load_config
from nasnav.score.evaluate import (
    CostModel,
    SupernetEvaluator,
    _bns,
    count_flops,
    latency_ms,
    make_recal_batches,
    recalibrate_bn,
    space_param_range,
)
from nasnav.workflow import search
from nasnav.workflow.runs import create_run
from nasnav.workflow.supernet import train_supernet

pytestmark = pytest.mark.usefixtures("single_thread")
REPO = Path(__file__).resolve().parent.parent


def make_evaluator(nas, kind: str, space, seed: int = 0):
    net = nas.make_supernet(space, kind, seed=seed)
    recal = [nas.make_input(kind, n=16, seed=200 + i) * 1.5 - 0.3 for i in range(2)]
    g = torch.Generator().manual_seed(seed)
    val_x = nas.make_input(kind, n=40, seed=300)
    val_y = torch.randint(0, 3, (40,), generator=g)
    return net, SupernetEvaluator(net, recal, val_x, val_y, nas.KIND_INPUT[kind][1], chunk=16)


def state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_scores_have_no_cross_talk_and_leave_supernet_unchanged(kind_space, nas):
    kind, space = kind_space
    net, ev = make_evaluator(nas, kind, space)
    before = state(net)
    rng = np.random.default_rng(0)
    a, b = space.largest(), space.sample(rng)
    while b == a:
        b = space.sample(rng)
    ra = ev(a)
    assert_same_state(state(net), before)
    rb = ev(b)
    assert_same_state(state(net), before)
    ra2 = ev(a)
    assert ra2 == ra  # bit-identical, not approximately
    assert_same_state(state(net), before)
    for r in (ra, rb):
        assert set(r) >= {"one_shot_acc", "val_loss", "params", "flops"}
        assert 0.0 <= r["one_shot_acc"] <= 1.0
        assert np.isfinite(r["val_loss"]) and r["val_loss"] > 0
        assert r["one_shot_acc"] * 40 == pytest.approx(round(r["one_shot_acc"] * 40))


def test_score_independent_of_prior_running_stats(nas):
    """Recalibration resets the path's BN statistics: stale ones must not change the score."""
    space = nas.image_space()
    net, ev = make_evaluator(nas, "image", space)
    arch = space.parse("conv3x3/conv1x1+sepconv3x3/dilconv3x3")
    ref = ev(arch)
    with torch.no_grad():
        for m in _bns(net.path_modules(arch)):
            m.running_mean.add_(5.0)
            m.running_var.mul_(10.0)
    perturbed = state(net)
    assert ev(arch) == ref
    assert_same_state(state(net), perturbed)  # and the stale statistics are put back


def test_score_matches_recalibrated_extracted_network(nas):
    """Reference: recalibrate a copy by hand, extract, and score the standalone network."""
    space = nas.image_space()
    net, ev = make_evaluator(nas, "image", space)
    val_x = nas.make_input("image", n=40, seed=300)
    val_y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(0))
    recal = ev.recal_x
    for arch in [space.largest(), space.parse("skip/avgpool3x3/conv5x5"), space.parse("maxpool3x3/skip/dilconv3x3")]:
        ref_net = copy.deepcopy(net)
        bns = [m for m in ref_net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        # resetting every BN (not only the path's) must not matter: the others are not on the path
        recalibrate_bn(ref_net, lambda x, a=arch, n=ref_net: n(x, a), recal, bns)
        sub = ref_net.extract(arch).eval()
        with torch.no_grad():
            logits = sub(val_x)
        acc = float((logits.argmax(1) == val_y).float().mean())
        loss = float(nn.functional.cross_entropy(logits, val_y))
        r = ev(arch)
        assert r["one_shot_acc"] == pytest.approx(acc, abs=1e-9)
        assert r["val_loss"] == pytest.approx(loss, rel=1e-4)


def test_recalibrate_bn_exact_average():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    bn = net[1]
    bn.momentum = 0.3
    with torch.no_grad():
        bn.running_mean.fill_(7.0)
    batches = [torch.randn(10, 3) * (i + 1) + i for i in range(3)]
    recalibrate_bn(net, net, batches, [bn])
    with torch.no_grad():
        feats = net[0](torch.cat(batches))
    assert torch.allclose(bn.running_mean, feats.mean(0), atol=1e-5)
    assert bn.momentum == 0.3  # restored
    assert not bn.training and not net.training
    assert int(bn.num_batches_tracked) == 3


def test_evaluator_chunks_do_not_change_scores(nas):
    space = nas.image_space()
    net = nas.make_supernet(space, "image")
    recal = [nas.make_input("image", n=16, seed=200)]
    val_x = nas.make_input("image", n=30, seed=300)
    val_y = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(1))
    ev1 = SupernetEvaluator(net, recal, val_x, val_y, (1, 8, 8), chunk=7)
    ev2 = SupernetEvaluator(net, recal, val_x, val_y, (1, 8, 8), chunk=1024)
    arch = space.largest()
    r1, r2 = ev1(arch), ev2(arch)
    assert r1["one_shot_acc"] == r2["one_shot_acc"]
    assert r1["val_loss"] == pytest.approx(r2["val_loss"], rel=1e-5)


# ---- costs ----------------------------------------------------------------------------------
def test_cost_model_matches_extracted_network(kind_space, nas):
    kind, space = kind_space
    net = nas.make_supernet(space, kind)
    shape = nas.KIND_INPUT[kind][1]
    net.train()
    cost = CostModel(net, shape)
    assert net.training  # mode restored
    rng = np.random.default_rng(5)
    archs = [space.sample(rng) for _ in range(8)] + [space.largest()]
    for arch in archs:
        sub = net.extract(arch)
        assert cost.params(arch) == sum(p.numel() for p in sub.parameters()), str(arch)
        assert cost.flops(arch) == count_flops(sub, shape), str(arch)
    if kind != "tabular":
        assert cost.flops(space.largest()) > 0


def test_cost_orders_architectures(nas):
    space = nas.image_space()
    cost = CostModel(nas.make_supernet(space, "image"), (1, 8, 8))
    small = space.parse("skip/skip/dilconv3x3")
    big = space.parse("conv3x3/conv1x1+sepconv3x3/conv5x5")
    assert cost.params(small) < cost.params(big)
    assert cost.flops(small) < cost.flops(big)
    lo, hi = space_param_range(space, cost)
    assert lo == cost.params(small)
    # the range is the space's true range, not that of each stage's first components (issue 18, item 1)
    assert (lo, hi) == (min(cost.params(a) for a in space), max(cost.params(a) for a in space))
    assert hi > cost.params(space.largest())
    pinned = space.pin("s3", "conv5x5")
    lo2, _ = space_param_range(pinned, cost)
    assert lo2 == cost.params(space.parse("skip/skip/conv5x5"))


def test_count_flops_conv_formula():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    # 2 * (output elements) * (multiply-adds per element)
    assert count_flops(conv, (2, 5, 5)) == 2 * (3 * 5 * 5) * (2 * 3 * 3)
    lin = nn.Linear(4, 6)
    lin.train()
    assert count_flops(lin, (4,)) == 2 * 4 * 6
    assert lin.training


def test_latency_positive_and_mode_restored():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    net.train()
    t = latency_ms(net, (1, 8, 8), reps=3)
    assert isinstance(t, float) and t > 0
    assert net.training


def test_make_recal_batches_seeded():
    x = torch.arange(50).float()[:, None]
    a = make_recal_batches(x, 3, 8, seed=1)
    b = make_recal_batches(x, 3, 8, seed=1)
    c = make_recal_batches(x, 3, 8, seed=2)
    assert len(a) == 3 and all(len(t) == 8 for t in a)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    flat = torch.cat(a).flatten().tolist()
    assert len(set(flat)) == len(flat)  # no sample twice
    # fewer samples than asked for: as many as there are
    assert sum(len(t) for t in make_recal_batches(x[:10], 3, 8, seed=0)) == 10


# ---- the device and precision of scoring ----------------------------------------------------------------
def _reference_scores(net, recal, val_x, val_y, arch, chunk=16) -> tuple[int, float]:
    """The evaluator before it learnt devices: float sums in Python, on the CPU."""
    bns = _bns(net.path_modules(arch))
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in bns]
    recalibrate_bn(net, lambda x: net(x, arch), recal, bns)
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in zip(val_x.split(chunk), val_y.split(chunk)):
            logits = net(x, arch)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
    for m, s in zip(bns, saved):
        m.load_state_dict(s)
    return correct, loss


def test_cpu_scores_are_exactly_those_of_before(nas):
    space = nas.image_space()
    net, ev = make_evaluator(nas, "image", space)
    ref = copy.deepcopy(net)
    val_x = nas.make_input("image", n=40, seed=300)
    val_y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(0))
    for arch in [space.largest(), space.parse("skip/avgpool3x3/conv5x5")]:
        correct, loss = _reference_scores(ref, ev.recal_x, val_x, val_y, arch)
        r = ev(arch)
        assert r["one_shot_acc"] == correct / 40 and r["val_loss"] == loss / 40  # bit for bit


def test_evaluator_puts_net_batches_and_split_on_its_device(nas):
    """A fake device (meta: shapes without data) stands in for a GPU: everything the evaluator scores
    with goes there, and the costs were counted before."""
    space = nas.image_space()
    net = nas.make_supernet(space, "image")
    recal = [nas.make_input("image", n=8, seed=1)]
    ev = SupernetEvaluator(net, recal, nas.make_input("image", n=10, seed=2), torch.zeros(10, dtype=torch.long),
                           nas.KIND_INPUT["image"][1], device="meta")
    assert ev.device.type == "meta" and next(ev.net.parameters()).device.type == "meta"
    assert all(x.device.type == "meta" for x in ev.recal_x) and all(x.is_meta and y.is_meta for x, y in ev.val)
    assert ev.cost.params(space.largest()) > 0


def test_bf16_autocast_scores_close_to_float32(nas):
    space = nas.image_space()
    net, ev32 = make_evaluator(nas, "image", space)
    ev16 = SupernetEvaluator(copy.deepcopy(net), ev32.recal_x, nas.make_input("image", n=40, seed=300),
                             torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(0)),
                             nas.KIND_INPUT["image"][1], chunk=16, autocast=torch.bfloat16)
    for arch in [space.largest(), space.parse("maxpool3x3/skip/dilconv3x3")]:
        a, b = ev32(arch), ev16(arch)
        assert abs(a["one_shot_acc"] - b["one_shot_acc"]) <= 0.1 and b["val_loss"] == pytest.approx(a["val_loss"], rel=0.05)


def test_search_scores_on_the_configured_accelerator(tmp_path, monkeypatch):
    """A config asking for a GPU, on a machine faked to have one: the evaluator is built for cuda:0 in
    bfloat16 (search.precision auto); the CPU config keeps the CPU and float32."""
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["supernet.epochs=1", "steering.autopilot=false"])
    run = create_run(cfg, tmp_path / "run")
    train_supernet(run, cfg, 0)
    built = []
    monkeypatch.setattr(search, "SupernetEvaluator", lambda *a, **k: built.append(k))
    search.supernet_evaluator(run, cfg, 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = load_config(REPO / "configs" / "tiny.yaml", ["trainer.accelerator=gpu", "steering.autopilot=false"])
    search.supernet_evaluator(run, gpu, 0)
    assert built[0]["device"] == torch.device("cpu") and built[0]["autocast"] is None
    assert built[1]["device"] == torch.device("cuda", 0) and built[1]["autocast"] is torch.bfloat16
