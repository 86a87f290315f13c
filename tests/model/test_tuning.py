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
