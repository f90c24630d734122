"""Small shared fixtures: tiny search spaces of every input kind and helpers to build supernets."""

from __future__ import annotations

import os
import types

import numpy as np
import pytest
import torch

from nasnav.space import SearchSpace, Stage
from nasnav.stop import clear_stop

# (kind, in_channels, input shape without the batch dimension)
KIND_INPUT = {
    "image": (1, (1, 8, 8)),
    "sequence": (2, (2, 16)),
    "tabular": (10, (10,)),
}


def image_space() -> SearchSpace:
    """3 x 10 x 2 = 60 architectures; stage s2 is an `any` stage with at most 2 components."""
    return SearchSpace(
        stages=(
            Stage("s1", ("conv3x3", "maxpool3x3", "skip"), channels=4),
            Stage(
                "s2", ("conv1x1", "sepconv3x3", "avgpool3x3", "skip"), select="any", max_active=2, channels=8, stride=2
            ),
            Stage("s3", ("dilconv3x3", "conv5x5"), channels=8),
        ),
        stem_channels=4,
        kind="image",
    )


def sequence_space() -> SearchSpace:
    return SearchSpace(
        stages=(
            Stage("q1", ("conv3x3", "sepconv5x5", "maxpool3x3", "skip"), channels=6),
            Stage("q2", ("conv1x1", "dilconv3x3", "avgpool3x3"), select="any", channels=8, stride=2),
        ),
        stem_channels=6,
        kind="sequence",
    )


def tabular_space() -> SearchSpace:
    return SearchSpace(
        stages=(
            Stage("h1", ("linear", "linear_wide", "linear_narrow", "skip"), channels=12),
            Stage(
                "h2", ("linear_gelu", "linear_tanh", "linear_dropout", "skip"), select="any", max_active=2, channels=8
            ),
        ),
        stem_channels=12,
        kind="tabular",
    )


SPACES = {"image": image_space, "sequence": sequence_space, "tabular": tabular_space}


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a busy 2-core machine
    (OpenMP workers spin while they wait). Restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_space() -> SearchSpace:
    """A small image space with a `one`, an `any` (max_active 2) and another `one` stage."""
    return image_space()


@pytest.fixture(params=["image", "sequence", "tabular"])
def kind_space(request) -> tuple[str, SearchSpace]:
    """(kind, space) for each input kind."""
    return request.param, SPACES[request.param]()


def make_input(kind: str, n: int = 6, seed: int = 0) -> torch.Tensor:
    _, shape = KIND_INPUT[kind]
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=g)


def make_supernet(space: SearchSpace, kind: str, num_classes: int = 3, seed: int = 0, warm_batches: int = 4):
    """A supernet whose BN running statistics are no longer the defaults (train-mode passes on random paths)."""
    from nasnav.model.supernet import Supernet

    torch.manual_seed(seed)
    in_ch, _ = KIND_INPUT[kind]
    net = Supernet(space, kind, in_ch, num_classes)
    rng = np.random.default_rng(seed)
    net.train()
    with torch.no_grad():
        for b in range(warm_batches):
            net(make_input(kind, n=8, seed=100 + b) * 2 + 0.5, space.sample(rng))
    # also perturb BN affine parameters so eval-mode BN is far from the identity
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


@pytest.fixture(scope="session")
def nas() -> types.SimpleNamespace:
    """The helpers above, for test modules (``from conftest import`` is ambiguous: tests/e2e has one too)."""
    return types.SimpleNamespace(
        KIND_INPUT=KIND_INPUT,
        image_space=image_space,
        sequence_space=sequence_space,
        tabular_space=tabular_space,
        make_input=make_input,
        make_supernet=make_supernet,
    )


@pytest.fixture(autouse=True)
def _no_stop_request_leaks():
    """A test that requests a stop (as SIGTERM would) must not stop the tests after it."""
    yield
    clear_stop()


@pytest.fixture(autouse=True, scope="session")
def _data_root_is_the_test_temp_folder(tmp_path_factory):
    """Data paths are confined to a data root (``nasnav.data.sources.data_roots``): the suite's data files live in
    pytest's temporary folders, so that folder is the suite's root (for the jobs and servers it starts too).
    Tests of the default roots take NASNAV_DATA_ROOT away themselves."""
    before = os.environ.get("NASNAV_DATA_ROOT")
    os.environ["NASNAV_DATA_ROOT"] = str(tmp_path_factory.getbasetemp())
    yield
    if before is None:
        os.environ.pop("NASNAV_DATA_ROOT", None)
    else:
        os.environ["NASNAV_DATA_ROOT"] = before


@pytest.fixture
def sleeping_jobs(monkeypatch):
    """Jobs the job queue (``jobs.slots``) starts are real processes holding the real locks, but sleep
    instead of training (fast); yields the (run, lane) of each, stopped at the end."""
    from nasnav.jobs import control, slots

    started: list = []

    def start(run, job, args, lane=None):
        started.append((run, lane))
        return control.start_job(run, job, ["-n", "1", "-r", "1", "import time; time.sleep(30)"], module="timeit", lane=lane)

    monkeypatch.setattr(slots, "start_job", start)
    yield started
    for run, lane in started:
        control.stop_job(run, timeout=5, lane=lane)
