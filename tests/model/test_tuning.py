"""``finsentry model tune`` internals: a real optuna study (SQLite) over real, tiny training runs."""

from __future__ import annotations

import optuna
import pytest

from finsentry.model.train_config import TrainConfig
from finsentry.model.tuning import (
    SEARCH_SPACE_DOC,
    SHIPPED_RECIPE,
    baseline_params,
    best_configs,
    run_study,
    study_markdown,
)

pytestmark = [pytest.mark.train, pytest.mark.slow]

TINY = TrainConfig(batch_size=8, max_steps=3, threads=2)


def test_the_shipped_recipe_and_its_levers_are_the_first_trials_and_the_study_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    shipped = TrainConfig.from_yaml(SHIPPED_RECIPE)

    study = run_study(storage, "t", n_trials=3, subset=24, eval_every=2, dev_subset=16, base=TINY)
    first, soft, second = sorted(study.trials, key=lambda t: t.number)
    assert first.params == baseline_params(shipped)
    assert first.params["lr"] == 8e-5 and first.params["fpb_oversample"] == 2 and first.params["pooling"] == "mean"
    assert first.user_attrs["recipe"] == "shipped.yaml" and first.params["fpb_soft_targets"] is False
    assert soft.params == first.params | {"fpb_soft_targets": True}
    assert soft.user_attrs["recipe"] == "shipped.yaml + fpb_soft_targets"
    assert "recipe" not in second.user_attrs
    assert set(second.params) == set(SEARCH_SPACE_DOC)
    for t in (first, soft, second):
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert 0.0 <= t.value <= 1.0
        assert t.value == pytest.approx(
            (t.user_attrs["topic_dev"] + (t.user_attrs["fpb_dev"] + t.user_attrs["sentiment_dev"]) / 2) / 2
        )

    resumed = run_study(storage, "t", n_trials=1, subset=24, eval_every=2, dev_subset=16, base=TINY)
    assert len(resumed.trials) == 4
    assert sum("recipe" in t.user_attrs for t in resumed.trials) == 2  # enqueued once, not on every resume

    table = study_markdown(resumed)
    assert table.count("\n") == 2 + 4 and "**shipped.yaml**" in table

    paths = best_configs(resumed, tmp_path / "best", top=2)
    assert len(paths) == 2
    ranked = sorted(resumed.trials, key=lambda t: -t.value)
    for path, trial in zip(paths, ranked, strict=False):
        assert path.name == f"trial-{trial.number}.yaml"
        recipe = TrainConfig.from_yaml(path)
        assert baseline_params(recipe) == trial.params
        assert recipe.max_steps is None and recipe.subset is None  # a full recipe, not the trial protocol


@pytest.mark.parametrize(
    ("option", "value", "minimum"),
    [
        ("--trials", "0", 1),
        ("--trials", "-3", 1),
        ("--subset", "-5", 8),
        ("--eval-every", "0", 1),
        ("--dev-subset", "-1", 8),
        ("--threads", "0", 1),
        ("--top", "0", 1),
    ],
)
def test_tune_cli_refuses_nonsense_counts_before_touching_the_study(tmp_path, option, value, minimum):
    from typer.testing import CliRunner

    from finsentry.cli import app

    db = tmp_path / "tune.db"
    done = CliRunner().invoke(app, ["model", "tune", "--storage", f"sqlite:///{db}", option, value])
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert f"Invalid value for '{option}'" in done.output
    assert f"greater than or equal to {minimum}" in " ".join(done.output.split())
    assert not db.exists()


def test_tune_cli_checks_storage_report_and_best_out_before_running(tmp_path):
    from typer.testing import CliRunner

    from finsentry.cli import app

    runner = CliRunner()
    db = tmp_path / "tune.db"
    ok = f"sqlite:///{db}"
    cases = [
        (
            ["--storage", "not-a-url"],
            "error: --storage 'not-a-url' is not a database URL; give a database URL such as sqlite:///runs/tune.db",
        ),
        (
            ["--storage", "nosuchdb://host/x"],
            "error: --storage 'nosuchdb://host/x': unknown database kind 'nosuchdb'; give a database URL such as "
            "sqlite:///runs/tune.db",
        ),
        (
            ["--storage", "sqlite:////proc/nope/x.db"],
            "error: --storage sqlite:////proc/nope/x.db: cannot create the folder /proc/nope (No such file or "
            "directory)",
        ),
        (
            ["--storage", ok, "--report", str(tmp_path)],
            f"error: --report {tmp_path} is a directory; name a file such as {tmp_path / 'tuning.md'}",
        ),
        (
            ["--storage", ok, "--report", str(tmp_path / "no-dir" / "t.md")],
            f"error: --report {tmp_path / 'no-dir' / 't.md'}: the folder {tmp_path / 'no-dir'} does not exist",
        ),
        (
            ["--storage", ok, "--best-out", str(SHIPPED_RECIPE)],
            f"error: --best-out {SHIPPED_RECIPE} exists and is not a folder; name a folder for the recipes",
        ),
    ]
    for args, message in cases:
        done = runner.invoke(app, ["model", "tune", *args])
        assert done.exit_code == 2, (args, done.output)
        assert done.output.strip() == message
    assert not db.exists()  # every check ran before the study was created


def test_run_study_validates_the_trial_protocol_before_creating_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    with pytest.raises(ValueError, match="n_trials must be at least 1, got 0"):
        run_study(storage, "t", n_trials=0, subset=24, eval_every=2, base=TINY)
    with pytest.raises(ValueError, match="subset") as err:
        run_study(storage, "t", n_trials=1, subset=-5, eval_every=2, base=TINY)
    assert err.value.errors()[0]["loc"] == ("subset",)
    with pytest.raises(ValueError, match="eval_every"):
        run_study(storage, "t", n_trials=1, subset=24, eval_every=0, base=TINY)
    assert not (tmp_path / "tune.db").exists()


def test_trial_base_and_with_updates_validate(tmp_path):
    from finsentry.model.tuning import trial_base, with_updates

    cfg = trial_base(TINY, subset=24, eval_every=2, dev_subset=16, threads=1)
    assert (cfg.subset, cfg.eval_every, cfg.dev_subset, cfg.threads, cfg.epochs, cfg.patience) == (24, 2, 16, 1, 1, 0)
    assert cfg.max_steps == TINY.max_steps
    with pytest.raises(ValueError, match="dropout"):
        with_updates(TINY, {"dropout": 1.5})
