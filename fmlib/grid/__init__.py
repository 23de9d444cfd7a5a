"""The experiment grid: models x structures x training regimes x seeds, trained, evaluated and cached.

`fmlib.grid.train_grid` lists the training runs of a study configuration and trains what is not
cached; `fmlib.grid.eval_grid` evaluates every trained model (clean, corrupted, attacked, robust,
transferred) and caches each table under a key of its model, parameters and code. Both are
re-exported here: ``from fmlib import grid; grid.evaluation(cfg, "clean", "unet", "nuclei")``.
"""

from .eval_grid import (
    EVALUATIONS,
    EvaluationJob,
    done_file,
    evaluation,
    evaluation_job,
    evaluation_jobs,
    evaluation_key,
    evaluation_path,
    evaluations,
    run_evaluation,
    surrogate_for,
)
from .train_grid import (
    DEFENSE_REGIMES,
    TEST_SEED_OFFSET,
    TrainingJob,
    data_spec,
    regimes_for,
    run_training,
    seeds_for,
    test_set,
    train_config,
    train_job,
    trained_model,
    training_job,
    training_jobs,
)

__all__ = ["DEFENSE_REGIMES", "EVALUATIONS", "TEST_SEED_OFFSET", "EvaluationJob", "TrainingJob", "data_spec",
           "done_file", "evaluation", "evaluation_job", "evaluation_jobs", "evaluation_key", "evaluation_path",
           "evaluations", "regimes_for", "run_evaluation", "run_training", "seeds_for", "surrogate_for", "test_set",
           "train_config", "train_job", "trained_model", "training_job", "training_jobs"]
