"""nasnav.space: sizes, enumeration, uniform sampling, encodings, parsing, edits, (de)serialisation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import yaml

from nasnav.space import Arch, SearchSpace, Stage


def abstract_space() -> SearchSpace:
    """3 x (4 + 6) x 2 = 60 architectures; no dependence on the ops registry."""
    return SearchSpace(
        stages=(
            Stage("a", ("x", "y", "z")),
            Stage("b", ("p", "q", "r", "s"), select="any", max_active=2),
            Stage("c", ("u", "v")),
        )
    )


# ---- sizes and enumeration -----------------------------------------------------------------
def test_stage_sizes():
    assert Stage("a", ("x", "y", "z")).size() == 3
    assert Stage("b", ("p", "q", "r", "s"), select="any").size() == 2**4 - 1
    assert Stage("b", ("p", "q", "r", "s"), select="any", max_active=2).size() == 4 + 6
    assert Stage("b", ("p", "q", "r", "s"), select="any", max_active=9).size() == 15
    assert Stage("b", ("p", "q", "r"), select="any", pruned=("q",)).size() == 3
    assert Stage("a", ("x", "y", "z"), pinned=("y",)).size() == 1


def test_space_size_matches_enumeration(small_space):
    for space in (abstract_space(), small_space):
        archs = list(space)
        assert len(archs) == space.size() == 60
        assert len(set(archs)) == len(archs)
        assert all(space.contains(a) for a in archs)
        # `any` choices never exceed max_active and are in candidate order
        for a in archs:
            b = a.choices[1]
            assert 1 <= len(b) <= 2
            assert list(b) == [c for c in space.stages[1].candidates if c in b]


def test_size_after_prune_and_pin():
    space = abstract_space().prune("a", "y").prune("b", "s")
    assert space.size() == 2 * (3 + 3) * 2
    assert len(list(space)) == space.size()
    pinned = space.pin("c", "v")
    assert pinned.size() == 2 * 6 * 1
    assert {a.choices[2] for a in pinned} == {("v",)}


def test_contains_rejects_wrong_archs():
    space = abstract_space()
    assert not space.contains(Arch((("x",), ("p",))))  # too few stages
    assert not space.contains(Arch((("x", "y"), ("p",), ("u",))))  # two in a `one` stage
    assert not space.contains(Arch((("x",), ("p", "q", "r"), ("u",))))  # beyond max_active
    assert not space.contains(Arch((("x",), (), ("u",))))  # empty choice
    assert not space.contains(Arch((("w",), ("p",), ("u",))))  # not a candidate
    assert not space.prune("a", "x").contains(Arch((("x",), ("p",), ("u",))))  # pruned
    assert space.contains(Arch((("x",), ("p", "q"), ("u",))))


def test_largest_uses_most_components():
    space = abstract_space()
    largest = space.largest()
    assert space.contains(largest)
    assert [len(c) for c in largest.choices] == [1, 2, 1]
    assert space.pin("b", "r").largest().choices[1] == ("r",)


# ---- sampling -------------------------------------------------------------------------------
def test_sampling_is_uniform_chi_square():
    space = abstract_space()
    rng = np.random.default_rng(1234)
    n = 6000
    counts = Counter(space.sample(rng) for _ in range(n))
    archs = list(space)
    assert set(counts) == set(archs)  # every architecture reached, nothing outside the space
    expected = n / len(archs)
    chi2 = sum((counts[a] - expected) ** 2 / expected for a in archs)
    # df = 59; the 0.999 quantile of chi-square(59) is about 95.
    assert chi2 < 95, chi2


def test_any_stage_sampling_uniform_over_subsets():
    """Subsets of different sizes are equally likely (not: size uniform, then subset)."""
    stage = Stage("b", ("p", "q", "r", "s", "t"), select="any", max_active=3)
    rng = np.random.default_rng(7)
    n = 5000
    counts = Counter(stage.sample(rng) for _ in range(n))
    choices = list(stage.choices())
    assert len(choices) == 5 + 10 + 10
    assert set(counts) == set(choices)
    expected = n / len(choices)
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in choices)
    assert chi2 < 52, chi2  # 0.999 quantile of chi-square(24) is about 51.2
    sizes = Counter(len(c) for c in counts.elements())
    assert sizes[1] / n == pytest.approx(5 / 25, abs=0.03)


def test_sampling_deterministic_in_generator():
    space = abstract_space()
    a = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    seq1 = [space.sample(g) for g in [np.random.default_rng(5)] for _ in range(20)]
    g = np.random.default_rng(5)
    seq2 = [space.sample(g) for _ in range(20)]
    assert a[0] == a[1] == a[2]
    assert seq1 == seq2
    g2 = np.random.default_rng(6)
    assert [space.sample(g2) for _ in range(20)] != seq2


def test_sampling_respects_prune_and_pin():
    space = abstract_space().prune("a", "x").prune("b", "q").pin("c", "v")
    rng = np.random.default_rng(0)
    for _ in range(500):
        arch = space.sample(rng)
        assert space.contains(arch)
        assert "x" not in arch.choices[0]
        assert "q" not in arch.choices[1]
        assert arch.choices[2] == ("v",)


def test_sampling_does_not_touch_global_numpy_state():
    np.random.seed(0)
    before = np.random.random()
    np.random.seed(0)
    abstract_space().sample(np.random.default_rng(3))
    assert np.random.random() == before


# ---- encodings ------------------------------------------------------------------------------
def test_mask_round_trip():
    space = abstract_space()
    cols = space.columns()
    assert cols[:3] == [("a", "x"), ("a", "y"), ("a", "z")]
    assert len(cols) == 9
    for arch in space:
        m = space.mask(arch)
        assert m.shape == (9,)
        assert m.dtype == np.uint8
        assert int(m.sum()) == sum(len(c) for c in arch.choices)
        assert space.from_mask(m) == arch
        assert space.from_mask(m.tolist()) == arch
    arch = Arch((("y",), ("p", "s"), ("v",)))
    assert space.mask(arch).tolist() == [0, 1, 0, 1, 0, 0, 1, 0, 1]


def test_mask_columns_cover_pruned_components():
    """The mask's coordinates are the ORIGINAL candidates: pruning keeps them stable."""
    space = abstract_space()
    pruned = space.prune("b", "q")
    assert pruned.columns() == space.columns()
    arch = Arch((("y",), ("p", "s"), ("v",)))
    assert pruned.mask(arch).tolist() == space.mask(arch).tolist()


def test_str_parse_round_trip(small_space):
    for space in (abstract_space(), small_space):
        for arch in space:
            text = str(arch)
            assert space.parse(text) == arch
            assert str(space.parse(text)) == text


def test_str_format():
    arch = Arch((("conv3x3",), ("maxpool3x3", "skip"), ("sepconv5x5",)))
    assert str(arch) == "conv3x3/maxpool3x3+skip/sepconv5x5"
    assert len(arch) == 3
    assert arch.uses(1, "skip") and not arch.uses(0, "skip")


def test_parse_normalises_order_and_whitespace():
    space = abstract_space()
    assert space.parse(" y / s + p / u ") == Arch((("y",), ("p", "s"), ("u",)))


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("w/p/u", ["stage 'a'", "'w'", "x, y, z"]),  # unknown component, names candidates
        ("x/p+w/u", ["stage 'b'", "'w'"]),
        ("x/p", ["2 stage(s)", "3", "a, b, c"]),  # wrong stage count
        ("x/p/u/u", ["4 stage(s)"]),
        ("x+y/p/u", ["stage 'a'", "exactly one", "2"]),  # two components in a `one` stage
        ("x/p+q+r/u", ["stage 'b'", "at most 2"]),  # beyond max_active
        ("x/p+p/u", ["stage 'b'", "repeats"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("x//u", ["stage 'b'"]),
    ],
)
def test_parse_errors(text, fragments):
    with pytest.raises(ValueError) as e:
        abstract_space().parse(text)
    for f in fragments:
        assert f in str(e.value)


def test_parse_pruned_component():
    space = abstract_space().prune("a", "y")
    with pytest.raises(ValueError, match=r"'y' of stage 'a' is pruned; active: x, z"):
        space.parse("y/p/u")
    assert space.parse("y/p/u", check_active=False) == Arch((("y",), ("p",), ("u",)))


def test_parse_pinned_stage():
    space = abstract_space().pin("b", "p+q")
    assert space.parse("x/p+q/u").choices[1] == ("p", "q")
    with pytest.raises(ValueError, match="pinned"):
        space.parse("x/p/u")
    assert space.parse("x/r/u", check_active=False).choices[1] == ("r",)


def test_parse_non_string():
    with pytest.raises(ValueError):
        abstract_space().parse(None)  # type: ignore[arg-type]


# ---- edits ----------------------------------------------------------------------------------
def test_prune_returns_new_space_and_keeps_original():
    space = abstract_space()
    pruned = space.prune("a", "y")
    assert space.stages[0].active == ("x", "y", "z")
    assert pruned.stages[0].active == ("x", "z")
    assert pruned.stages[0].candidates == ("x", "y", "z")
    assert pruned.stages[0].pruned == ("y",)
    assert pruned.prune("a", "y") == pruned  # idempotent
    # pruned list stays in candidate order whatever the order of pruning
    assert space.prune("b", "s").prune("b", "p").stages[1].pruned == ("p", "s")
    # by index and by digit string too
    assert space.prune(0, "y") == pruned
    assert space.prune("0", "y") == pruned


def test_prune_refuses_last_active_component():
    space = abstract_space().prune("c", "u")
    with pytest.raises(ValueError, match=r"last active component of stage 'c'") as e:
        space.prune("c", "v")
    assert "'v'" in str(e.value)
    # and on a pinned stage, the pinned component is the last active one
    with pytest.raises(ValueError, match="last active"):
        abstract_space().pin("a", "x").prune("a", "x")


def test_prune_unknown_component_and_stage():
    space = abstract_space()
    with pytest.raises(ValueError, match=r"no component 'w'; candidates: x, y, z"):
        space.prune("a", "w")
    with pytest.raises(ValueError, match=r"unknown stage 'zz'; stages: a, b, c"):
        space.prune("zz", "x")
    with pytest.raises(ValueError, match=r"out of range 0..2"):
        space.prune(3, "x")
    with pytest.raises(ValueError, match=r"out of range"):
        space.prune(-1, "x")


def test_pin_semantics():
    space = abstract_space()
    pinned = space.pin("b", "q+p")
    assert pinned.stages[1].pinned == ("p", "q")  # candidate order
    assert pinned.stages[1].active == ("p", "q")
    assert list(pinned.stages[1].choices()) == [("p", "q")]
    assert space.pin("b", ["r"]).stages[1].pinned == ("r",)
    with pytest.raises(ValueError, match="at most 1"):
        space.pin("a", "x+y")
    with pytest.raises(ValueError, match="at most 2"):
        space.pin("b", "p+q+r")
    with pytest.raises(ValueError, match="no component 'w'"):
        space.pin("a", "w")
    with pytest.raises(ValueError, match=r"'y' in stage 'a': it is pruned"):
        space.prune("a", "y").pin("a", "y")


def test_repin_one_stage():
    space = abstract_space().pin("a", "x")
    assert space.pin("a", "y").stages[0].pinned == ("y",)


def test_prune_component_of_pinned_any_stage_shrinks_pin():
    space = abstract_space().pin("b", "p+q").prune("b", "q")
    st = space.stages[1]
    assert st.pinned == ("p",)
    assert "q" in st.pruned
    assert space.size() == 3 * 1 * 2


def test_restore_semantics():
    space = abstract_space()
    edited = space.prune("a", "x").prune("a", "y").pin("b", "r")
    one = edited.restore("a", "x")
    assert one.stages[0].active == ("x", "z")
    assert one.stages[0].pruned == ("y",)
    unpinned = edited.restore("b", "r")
    assert unpinned.stages[1].pinned is None
    whole = edited.restore("a")
    assert whole.stages[0].pruned == () and whole.stages[0].pinned is None
    assert edited.unpruned() == space
    assert edited.unpruned().size() == space.size()
    with pytest.raises(ValueError, match="no component 'w'"):
        edited.restore("a", "w")


# ---- (de)serialisation ---------------------------------------------------------------------
def test_to_dict_from_dict_yaml_round_trip():
    space = SearchSpace(
        stages=(
            Stage("a", ("x", "y", "z"), channels=8, stride=1, pruned=("y",)),
            Stage("b", ("p", "q", "r", "s"), select="any", max_active=2, channels=32, stride=2, pinned=("p", "r")),
            Stage("c", ("u", "v")),
        ),
        stem_channels=24,
    )
    text = yaml.safe_dump(space.to_dict())
    back = SearchSpace.from_dict(yaml.safe_load(text), kind="image")
    assert back == space
    assert back.kind == "image"
    assert back.stages[1].pinned == ("p", "r")
    assert back.stages[1].max_active == 2
    assert back.stages[0].pruned == ("y",)
    assert back.size() == space.size()
    assert [str(a) for a in back] == [str(a) for a in space]
    # plain types only, so safe_dump never needs python tags
    assert "!!python" not in text


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ([1, 2], "expected a mapping"),
        ({"stages": "abc"}, "space.stages: expected a list"),
        ({"stages": ["abc"]}, "space.stages[0]: expected a mapping"),
        ({"stages": [{"name": "a", "candidates": ["x"], "colour": 1}]}, "space.stages[0]: unknown key(s) colour"),
        ({"stages": [{"name": "a", "candidates": "x"}]}, "space.stages[0].candidates"),
        ({"stages": [{"name": "a", "candidates": ["x"], "channels": "8"}]}, "space.stages[0].channels"),
        ({"stages": [{"name": "a", "candidates": ["x"], "stride": True}]}, "space.stages[0].stride"),
        ({"stages": [{"name": "a", "candidates": ["x"]}], "stem_channels": "16"}, "space.stem_channels"),
    ],
)
def test_from_dict_errors(raw, fragment):
    with pytest.raises(ValueError) as e:
        SearchSpace.from_dict(raw)
    assert fragment in str(e.value)


# ---- problems -------------------------------------------------------------------------------
def test_valid_space_has_no_problems():
    space = abstract_space()
    assert space.problems() == []
    assert space.problems(known=["x", "y", "z", "p", "q", "r", "s", "u", "v"]) == []
    assert space.validate() is space


def test_problems_name_their_keys():
    space = SearchSpace(
        stages=(
            Stage("a", ("x", "x", "conv9x9")),  # 0: duplicate, unknown
            Stage("a", ("x",), select="some"),  # 1: duplicate name, bad select
            Stage("bad/name", ("x",), max_active=0, channels=0, stride=3),  # 2
            Stage("d", ("x", "y"), pruned=("x", "y")),  # 3: everything pruned
            Stage("e", ("x", "y"), pruned=("w",), pinned=("q",)),  # 4
            Stage("f", ()),  # 5
        ),
        stem_channels=0,
    )
    problems = space.problems(known=["x", "y"])
    text = "\n".join(problems)
    expected = [
        "space.stem_channels: 0 is out of range 1..4096",
        "space.stages: duplicate stage name 'a'",
        "space.stages[0].candidates: 'x' is listed twice",
        "space.stages[0].candidates: unknown component 'conv9x9'; known: x, y",
        "space.stages[1].select: 'some' is not one of one, any",
        "space.stages[2].name: 'bad/name'",
        "space.stages[2].max_active: 0 must be at least 1",
        "space.stages[2].channels: 0 is out of range",
        "space.stages[2].stride: 3 must be 1 or 2",
        "space.stages[3]: every component is pruned",
        "space.stages[4].pruned: 'w' is not a candidate of stage 'e'",
        "space.stages[4].pinned: ['q']",
        "space.stages[5].candidates: empty",
    ]
    for e in expected:
        assert e in text, e
    assert all(p.startswith("space.") for p in problems)
    with pytest.raises(ValueError) as err:
        space.validate(known=["x", "y"])
    assert str(err.value) == text
    assert SearchSpace(stages=()).problems(where="run") == ["run.stages: empty; give at least one stage"]


def test_describe_rows():
    rows = abstract_space().prune("a", "y").pin("c", "v").describe()
    assert [r["stage"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["active"] == "x, z" and rows[0]["pruned"] == "y" and rows[0]["choices"] == 2
    assert rows[1]["choices"] == 10 and rows[1]["select"] == "any"
    assert rows[2]["pinned"] == "v" and rows[2]["choices"] == 1
    assert math.prod(r["choices"] for r in rows) == abstract_space().prune("a", "y").pin("c", "v").size()


def test_problems_flag_impossible_pins():
    too_many = SearchSpace((Stage("a", ("x", "y", "z"), pinned=("x", "y")),))
    beyond_max = SearchSpace((Stage("a", ("x", "y", "z"), select="any", max_active=1, pinned=("x", "y")),))
    pinned_pruned = SearchSpace((Stage("a", ("x", "y", "z"), pruned=("x",), pinned=("x",)),))
    for space in (too_many, beyond_max, pinned_pruned):
        assert any(p.startswith("space.stages[0].pinned") for p in space.problems()), space
