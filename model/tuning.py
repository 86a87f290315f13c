"""Hyper-parameter search with optuna (TPE sampler, median pruner), objective on dev only.

Budget for 2 CPU cores: each trial trains one epoch on a subset of every training source
(``subset`` examples each) and reports the dev score (mean of topic dev macro-F1 and the mean of FPB-dev and
tweet-sentiment-dev macro-F1, :func:`finsentry.model.train.dev_scores`) every ``eval_every`` steps to the
median pruner; the best few configurations are then trained in full with ``finsentry model train``.
The study lives in SQLite (``--storage sqlite:///runs/tune.db``), so an interrupted search resumes where it
stopped. Test and validation sets are never read here.

The first trials of a new study are the shipped recipe (``model/configs/shipped.yaml``, enqueued with
:func:`baseline_params`) and single levers applied to it (:data:`LEVER_TRIALS`), so every proposal is ranked
against the recipe it would replace under the same one-epoch subset protocol; :func:`best_configs` writes
the best few as YAML recipes for the full runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from finsentry.model.train_config import SHIPPED_RECIPE, TrainConfig

SEARCH_SPACE_DOC = {
    "lr": "log-uniform 2e-5 .. 2e-4 (encoder)",
    "head_lr": "log-uniform 1e-4 .. 3e-3",
    "epochs": "1 .. 4 (used in the full runs; trials train one epoch)",
    "sentiment_weight": "0.5 .. 2.0 (topic weight fixed at 1)",
    "fpb_oversample": "1 .. 3 (sampling ratio of FPB in the joint mix)",
    "dropout": "0.0 .. 0.3",
    "pooling": "mean | cls",
    "freeze_layers": "0 .. 3",
    "max_length": "48 | 64 | 96",
    "fpb_soft_targets": "false | true (agreement-aware soft targets for FPB)",
}
"""The search space, as documented in ``docs/tuning.md``."""


def with_updates(base: TrainConfig, update: dict[str, object]) -> TrainConfig:
    """``base`` with ``update`` applied and validated (``model_copy(update=...)`` would skip validation).

    Raises:
        pydantic.ValidationError: a value is out of range (a ``ValueError``; the error names the key).

    >>> with_updates(TrainConfig(), {"subset": 8}).subset
    8
    >>> try:
    ...     with_updates(TrainConfig(), {"subset": -5})
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["loc"], exc.errors()[0]["msg"])
    ('subset',) Input should be greater than or equal to 8
    """
    return TrainConfig.model_validate(base.model_dump() | update)


def trial_base(
    base: TrainConfig | None,
    *,
    subset: int,
    eval_every: int,
    dev_subset: int | None = None,
    threads: int | None = None,
    seed: int = 13,
) -> TrainConfig:
    """The recipe every trial starts from: ``base`` (default: :class:`TrainConfig` with ``seed``) under the
    trial protocol (one epoch on ``subset`` examples per source, dev every ``eval_every`` steps on the first
    ``dev_subset`` rows, no early stopping, ``threads`` torch threads), validated.

    Raises:
        pydantic.ValidationError: an argument is out of range (``subset`` / ``dev_subset`` < 8, ``eval_every``
            or ``threads`` < 1).
    """
    update: dict[str, object] = {
        "subset": subset,
        "dev_subset": dev_subset,
        "epochs": 1,
        "eval_every": eval_every,
        "patience": 0,
    }
    if threads is not None:
        update["threads"] = threads
    return with_updates(base or TrainConfig(seed=seed), update)


def suggest_config(trial, base: TrainConfig) -> TrainConfig:
    """A :class:`TrainConfig` drawn from the search space for an optuna ``trial`` (validated)."""
    return with_updates(
        base,
        {
            "lr": trial.suggest_float("lr", 2e-5, 2e-4, log=True),
            "head_lr": trial.suggest_float("head_lr", 1e-4, 3e-3, log=True),
            "epochs": trial.suggest_int("epochs", 1, 4),
            "sentiment_weight": trial.suggest_float("sentiment_weight", 0.5, 2.0),
            "fpb_oversample": trial.suggest_int("fpb_oversample", 1, 3),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
            "pooling": trial.suggest_categorical("pooling", ["mean", "cls"]),
            "freeze_layers": trial.suggest_int("freeze_layers", 0, 3),
            "max_length": trial.suggest_categorical("max_length", [48, 64, 96]),
            "fpb_soft_targets": trial.suggest_categorical("fpb_soft_targets", [False, True]),
        },
    )


LEVER_TRIALS: tuple[tuple[str, dict[str, object]], ...] = (
    (SHIPPED_RECIPE.name, {}),
    (f"{SHIPPED_RECIPE.name} + fpb_soft_targets", {"fpb_soft_targets": True}),
)
"""The first trials of a new study, in order: the shipped recipe, then single levers applied to it."""


def baseline_params(recipe: TrainConfig) -> dict[str, object]:
    """The search-space parameters of ``recipe`` (one value per key of :data:`SEARCH_SPACE_DOC`).

    >>> baseline_params(TrainConfig())["pooling"]
    'mean'
    """
    values = recipe.model_dump()
    return {name: values[name] for name in SEARCH_SPACE_DOC}


def run_study(
    storage: str,
    study_name: str = "finsentry",
    n_trials: int = 10,
    subset: int = 2000,
    eval_every: int = 40,
    seed: int = 13,
    dev_subset: int | None = None,
    base: TrainConfig | None = None,
    threads: int | None = None,
) -> object:
    """Run (or resume) ``n_trials`` more trials of the study; returns the optuna ``Study``.

    Each trial: one epoch on ``subset`` examples per source, dev every ``eval_every`` steps (full dev sets, or
    the first ``dev_subset`` rows of each for a cheaper objective). ``base`` (default: the defaults of
    :class:`TrainConfig`, which are the shipped recipe) supplies what the search does not vary; tests pass a
    tiny one (``max_steps``). ``threads``: torch threads per trial (default: the base's); two worker
    processes of one thread each on one SQLite study use 2 cores better than one of two threads.

    Raises:
        ValueError: ``n_trials`` < 1, or the trial protocol is out of range (:func:`trial_base`); raised before
            the study is created or touched.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    base = trial_base(base, subset=subset, eval_every=eval_every, dev_subset=dev_subset, threads=threads, seed=seed)

    def objective(trial) -> float:
        cfg = suggest_config(trial, base)
        trial.set_user_attr("full_epochs", cfg.epochs)
        cfg = with_updates(cfg, {"epochs": 1})
        last = {"score": 0.0}

        def report(step: int, dev: dict[str, float]) -> None:
            last["score"] = dev["dev_score"]
            trial.report(dev["dev_score"], step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        from finsentry.model.train import train

        with tempfile.TemporaryDirectory() as tmp:
            best = train(cfg, Path(tmp), progress=False, on_eval=report, save_checkpoints=False)
        for k, v in best["dev"].items():
            trial.set_user_attr(k, v)
        return float(best["dev"]["dev_score"])

    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=eval_every),
    )
    if not study.trials:
        shipped = baseline_params(TrainConfig.from_yaml(SHIPPED_RECIPE))
        for name, change in LEVER_TRIALS:
            study.enqueue_trial(shipped | change, user_attrs={"recipe": name})
    study.optimize(objective, n_trials=n_trials)
    return study


def best_configs(study, out_dir: Path, top: int = 3, base: TrainConfig | None = None) -> list[Path]:
    """Write the ``top`` best completed trials as full recipes ``out_dir/trial-<n>.yaml``; returns the paths.

    Each recipe is ``base`` (default: the shipped recipe) with the trial's parameters, ``epochs`` being the
    trial's proposed number of full epochs; train one with ``finsentry model train --config PATH``.

    Raises:
        ValueError: ``top`` < 1.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    base = base or TrainConfig.from_yaml(SHIPPED_RECIPE)
    done = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in sorted(done, key=lambda t: -t.value)[:top]:
        cfg = with_updates(base, t.params)
        path = out_dir / f"trial-{t.number}.yaml"
        header = f"# optuna trial {t.number} of study {study.study_name}: dev score {t.value:.4f} (one-epoch subset)\n"
        path.write_text(header + yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        paths.append(path)
    return paths


def study_markdown(study) -> str:
    """A Markdown table of every trial (state, dev score, parameters), best first."""
    rows = ["| trial | state | dev score | topic dev | FPB dev | tweet dev | params |", "|---|---|---|---|---|---|---|"]
    trials = sorted(study.trials, key=lambda t: -(t.value if t.value is not None else -1))

    def fmt(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else "-"

    for t in trials:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        if "recipe" in t.user_attrs:
            params = f"**{t.user_attrs['recipe']}**: {params}"
        dev = [t.user_attrs.get(k) for k in ("topic_dev", "fpb_dev", "sentiment_dev")]
        rows.append(
            f"| {t.number} | {t.state.name.lower()} | {fmt(t.value)} | {' | '.join(map(fmt, dev))} | {params} |"
        )
    return "\n".join(rows) + "\n"
