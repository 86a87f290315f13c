"""Hyper-parameter search with optuna (TPE sampler, median pruner), objective on dev only.

Budget for 2 CPU cores: each trial trains one epoch on a subset of every training source
(``subset`` examples each) and reports the dev score (mean of topic dev macro-F1 and the mean of FPB-dev and
tweet-sentiment-dev macro-F1, :func:`finsentry.model.train.dev_scores`) every ``eval_every`` steps to the
median pruner; the best few configurations are then trained in full with ``finsentry model train``.
The study lives in SQLite (``--storage sqlite:///runs/tune.db``), so an interrupted search resumes where it
stopped. Test and validation sets are never read here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from finsentry.model.train_config import TrainConfig

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
}
"""The search space, as documented in ``docs/tuning.md``."""


def suggest_config(trial, base: TrainConfig) -> TrainConfig:
    """A :class:`TrainConfig` drawn from the search space for an optuna ``trial``."""
    return base.model_copy(
        update={
            "lr": trial.suggest_float("lr", 2e-5, 2e-4, log=True),
            "head_lr": trial.suggest_float("head_lr", 1e-4, 3e-3, log=True),
            "epochs": trial.suggest_int("epochs", 1, 4),
            "sentiment_weight": trial.suggest_float("sentiment_weight", 0.5, 2.0),
            "fpb_oversample": trial.suggest_int("fpb_oversample", 1, 3),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
            "pooling": trial.suggest_categorical("pooling", ["mean", "cls"]),
            "freeze_layers": trial.suggest_int("freeze_layers", 0, 3),
            "max_length": trial.suggest_categorical("max_length", [48, 64, 96]),
        }
    )


def run_study(
    storage: str,
    study_name: str = "finsentry",
    n_trials: int = 10,
    subset: int = 2000,
    eval_every: int = 40,
    seed: int = 13,
    dev_subset: int | None = None,
) -> object:
    """Run (or resume) ``n_trials`` more trials of the study; returns the optuna ``Study``.

    Each trial: one epoch on ``subset`` examples per source, dev every ``eval_every`` steps (full dev sets, or
    the first ``dev_subset`` rows of each for a cheaper objective).
    """
    import optuna

    base = TrainConfig(seed=seed, subset=subset, dev_subset=dev_subset, epochs=1, eval_every=eval_every, patience=0)

    def objective(trial) -> float:
        cfg = suggest_config(trial, base)
        trial.set_user_attr("full_epochs", cfg.epochs)
        cfg = cfg.model_copy(update={"epochs": 1})
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
    study.optimize(objective, n_trials=n_trials)
    return study


def study_markdown(study) -> str:
    """A Markdown table of every trial (state, dev score, parameters), best first."""
    rows = ["| trial | state | dev score | params |", "|---|---|---|---|"]
    trials = sorted(study.trials, key=lambda t: -(t.value or -1))
    for t in trials:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        rows.append(f"| {t.number} | {t.state.name.lower()} | {value} | {params} |")
    return "\n".join(rows) + "\n"
