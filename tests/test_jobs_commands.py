"""The app's job command lines are accepted by the CLI's own parser, with the values they carry."""

from nasnav.cli import build_parser
from nasnav.jobs import commands
from nasnav.store.run_dir import RunDir


def parse(argv):
    return build_parser().parse_args(argv)


def test_every_job_command_parses(tmp_path):
    run = RunDir(tmp_path / "r")
    assert parse(commands.supernet(run)).resume is False
    assert parse(commands.supernet(run, resume=True)).resume is True
    a = parse(commands.search(run, "evolution", 40, resume=True))
    assert (a.command, a.strategy, a.budget, a.resume) == ("search", "evolution", 40, True)
    assert parse(commands.next_round(run)).command == "round"
    assert parse(commands.spotcheck(run, 7)).n == 7
    r = parse(commands.retrain(run, "conv3x3/skip", 2))
    assert (r.arch, r.seeds, r.no_export) == ("conv3x3/skip", 2, False)
    assert parse(commands.export(run, "conv3x3/skip")).arch == "conv3x3/skip"
    for argv in (commands.supernet(run), commands.spotcheck(run), commands.export(run, "a")):
        assert argv[1] == str(run.path)
