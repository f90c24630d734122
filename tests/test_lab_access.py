"""Lab server rules, server-side (``workflow.access``): a run is its owner's; others see it only when
shared, and then read-only; admins may do everything; without logins the one local user may do
everything and no owner file is written. Every forbidden action is refused by the function itself
and changes nothing."""

from __future__ import annotations

import pytest

from nasnav.config import load_config, preset_path
from nasnav.errors import InvalidInput
from nasnav.jobs import control, slots
from nasnav.steering.actions import Action
from nasnav.store import layout
from nasnav.store.io import read_json
from nasnav.ui import space_edit
from nasnav.workflow import access

LAB = access.Lab.from_settings({"admins": ["Root@Lab.org"], "jobs_per_user": 1, "jobs_total": 3}, logins=True)
ALICE, BOB, ROOT = LAB.user("alice@lab.org", "Alice"), LAB.user("bob@lab.org"), LAB.user("root@lab.org")


@pytest.fixture(scope="module")
def cfg():
    return load_config(preset_path("tiny"))


@pytest.fixture
def alices(tmp_path, cfg):
    return access.create_run(ALICE, cfg, tmp_path / "alices")


def test_a_new_run_is_its_creators_and_private(alices, tmp_path):
    assert read_json(alices.path / layout.OWNER)["owner"] == "alice@lab.org"
    assert [r["name"] for r in access.visible_runs(ALICE, tmp_path)] == ["alices"]
    assert access.visible_runs(BOB, tmp_path) == []
    with pytest.raises(access.Forbidden, match="not yours and not shared"):
        access.open_run(BOB, alices.path)  # as a URL would name it
    assert access.open_run(ALICE, alices.path).path == alices.path


def test_every_action_of_another_user_is_refused_and_changes_nothing(alices, cfg, sleeping_jobs):
    before = sorted(p.relative_to(alices.path) for p in alices.path.rglob("*"))
    owner = (alices.path / layout.OWNER).read_bytes()
    for shared in (False, True):
        access.share(ALICE, alices, shared)
        owner = (alices.path / layout.OWNER).read_bytes()
        refused = [
            lambda: access.start_job(BOB, alices, "supernet", ["supernet", str(alices.path)], LAB.limits),
            lambda: access.start_job(BOB, alices, "spotcheck", [], LAB.limits, lane=layout.SPOTCHECK_LANE),
            lambda: access.stop_job(BOB, alices),
            lambda: access.decide(BOB, alices, cfg, [Action("prune", "s1", "skip")]),
            lambda: access.undo(BOB, alices),
            lambda: access.redo(BOB, alices),
            lambda: access.share(BOB, alices, True),
            lambda: access.delete_run(BOB, alices),
            lambda: access.require_act(BOB, alices),
            lambda: space_edit.save_to_run(alices, cfg, BOB),  # the space editor's write
        ]
        for action in refused:
            with pytest.raises(access.Forbidden, match="only its owner or an admin" if shared else "not yours"):
                action()
        assert sleeping_jobs == [] and slots.queued(alices.path.parent) == []
        assert alices.exists() and alices.current_round() == 0
        assert (alices.path / layout.OWNER).read_bytes() == owner
    after = sorted(p.relative_to(alices.path) for p in alices.path.rglob("*"))
    assert after == before


def test_a_shared_run_is_readable_by_everyone_logged_in(alices, tmp_path):
    access.share(ALICE, alices, True)
    seen = access.visible_runs(BOB, tmp_path)
    assert [(r["name"], r["owner"], r["shared"], r["mine"]) for r in seen] == [("alices", "alice@lab.org", True, False)]
    assert access.open_run(BOB, alices.path).path == alices.path
    assert access.may_view(BOB, alices) and not access.may_act(BOB, alices)
    access.share(ALICE, alices, False)
    with pytest.raises(access.Forbidden):
        access.open_run(BOB, alices.path)


def test_the_owner_and_an_admin_may_act(alices, cfg, sleeping_jobs, tmp_path):
    assert access.start_job(ALICE, alices, "supernet", [], LAB.limits) is None  # started: a slot was free
    assert control.running_job(alices)["job"] == "supernet"
    assert access.stop_job(ROOT, alices) and control.running_job(alices) is None  # an admin stops it
    assert access.decide(ROOT, alices, cfg, [Action("prune", "s1", "skip")]) is None
    assert alices.current_round() == 1
    assert access.undo(ALICE, alices) == 0 and access.redo(ROOT, alices) == 1
    assert [r["mine"] for r in access.visible_runs(ROOT, tmp_path)] == [True]
    access.delete_run(ROOT, alices)
    assert not alices.path.exists() and access.visible_runs(ALICE, tmp_path) == []


def test_a_run_is_not_deleted_under_its_running_job(alices, sleeping_jobs):
    access.start_job(ALICE, alices, "supernet", [], LAB.limits)
    with pytest.raises(InvalidInput, match="stop it before deleting"):
        access.delete_run(ALICE, alices)
    assert alices.exists()


def test_without_logins_the_local_user_may_do_everything(tmp_path, cfg, sleeping_jobs):
    run = access.create_run(access.LOCAL, cfg, tmp_path / "mine")
    assert not (run.path / layout.OWNER).exists()  # the app as it always was: no owner file
    assert access.may_act(access.LOCAL, run) and [r["name"] for r in access.visible_runs(access.LOCAL, tmp_path)] == ["mine"]
    assert access.start_job(access.LOCAL, run, "search", [], slots.Limits()) is None
    assert access.stop_job(access.LOCAL, run)


def test_runs_without_an_owner_or_with_a_broken_owner_file_are_for_admins_only(tmp_path, cfg, alices):
    unowned = access.create_run(access.LOCAL, cfg, tmp_path / "old")
    (alices.path / layout.OWNER).write_text('{"owner": ["alice@lab.org"], "shared": true')
    for run in (unowned, alices):
        assert not access.may_view(ALICE, run) and not access.may_view(BOB, run)
        assert access.may_act(ROOT, run)
    with pytest.raises(InvalidInput, match="no owner"):
        access.share(ROOT, unowned, True)


def test_lab_settings_are_checked():
    assert LAB.admins == {"root@lab.org"} and LAB.limits == slots.Limits(per_user=1, total=3)
    assert ROOT.admin and not ALICE.admin
    with pytest.raises(InvalidInput, match=r"\[nasnav\] admins"):
        access.Lab.from_settings({"admins": "root@lab.org"}, logins=True)
    with pytest.raises(InvalidInput, match="jobs_total: 0 is not a whole number"):
        access.Lab.from_settings({"jobs_total": 0}, logins=True)
    with pytest.raises(InvalidInput, match="jobs_per_user: 'two'"):
        access.Lab.from_settings({"jobs_per_user": "two"}, logins=True)
    assert slots.Limits.from_settings({"jobs_per_user": "3"}).per_user == 3
    for nobody in ("", "  ", "local"):
        with pytest.raises(access.Forbidden, match="usable e-mail"):
            LAB.user(nobody)


def test_workspace_disk_use_counts_the_users_own_runs(tmp_path, cfg, alices):
    bobs = access.create_run(BOB, cfg, tmp_path / "bobs")
    (bobs.path / "big.bin").write_bytes(b"x" * 100_000)
    a, b = access.workspace_usage(ALICE, tmp_path), access.workspace_usage(BOB, tmp_path)
    assert a == access.disk_usage(alices.path) > 0
    assert b == access.disk_usage(bobs.path) >= a + 100_000 - 1000
    assert access.workspace_usage(access.LOCAL, tmp_path) == a + b


def test_a_login_name_shown_on_a_page_is_no_markup():
    from nasnav.ui.widgets import plain

    assert plain("eve](javascript:alert(1))[x@lab.org") == r"eve\]\(javascript\:alert\(1\)\)\[x@lab\.org"
