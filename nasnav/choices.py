"""Every set of named choices of the config, declared once (the lowest layer: any module may import
it). ``config`` uses the ``Literal`` types for validation; the rest of the code uses the tuples."""

import typing
from typing import Literal

Source = Literal["digits", "mnist1d", "folder", "cifar", "csv", "cifar10", "cifar100", "fashion_mnist", "svhn"]
Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["cosine", "constant"]
Sampler = Literal["uniform", "fair"]  # uniform: random path per step; fair: every component equally often
Strategy = Literal["random", "evolution", "local", "guided"]  # guided: a surrogate picks what to score next
Projection = Literal["mds", "tsne", "umap", "pca"]
Fitness = Literal["adjusted", "marginal"]
Evidence = Literal["round", "all"]
Tracker = Literal["csv", "tensorboard", "mlflow"]  # trainer.logger: where trainings log metrics and hyperparameters
NarrowBy = Literal["model", "score", "surrogate"]
Pick = Literal["surrogate", "score"]  # the candidate to retrain: surrogate estimate, or the best own score
SelectMode = Literal["one", "any"]  # one: single path; any: non-empty subset, outputs summed
ScoringPrecision = Literal["auto", "bf16", "32"]  # one-shot scoring: auto = bf16 autocast on a GPU, float32 elsewhere

SOURCES: tuple[str, ...] = typing.get_args(Source)
OPTIMIZERS: tuple[str, ...] = typing.get_args(Optimizer)
SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)
SAMPLERS: tuple[str, ...] = typing.get_args(Sampler)
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)
PROJECTIONS: tuple[str, ...] = typing.get_args(Projection)
FITNESS_MODES: tuple[str, ...] = typing.get_args(Fitness)
EVIDENCE_MODES: tuple[str, ...] = typing.get_args(Evidence)
NARROW_BY: tuple[str, ...] = typing.get_args(NarrowBy)
PICKS: tuple[str, ...] = typing.get_args(Pick)
SELECT_MODES: tuple[str, ...] = typing.get_args(SelectMode)
SCORING_PRECISIONS: tuple[str, ...] = typing.get_args(ScoringPrecision)

SOURCE_KIND = {"digits": "image", "mnist1d": "sequence", "folder": "image", "cifar": "image", "csv": "tabular",
               "cifar10": "image", "cifar100": "image", "fashion_mnist": "image", "svhn": "image"}
FILE_SOURCES = ("folder", "cifar", "csv")  # sources that read data.path
STANDARD_SOURCES = ("cifar10", "cifar100", "fashion_mnist", "svhn")  # stored in data.root, fetched with data.download
assert tuple(SOURCE_KIND) == SOURCES
