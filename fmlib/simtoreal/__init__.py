"""Sim-to-real: models trained on synthetic images, scored on real nuclei images.

The experiments of the real-images chapter, as functions of models, tiles (`fmlib.realdata.Tiles`)
and plain values:

- score a pool of synthetic-trained models on several real sources, with the Otsu + watershed
  baseline beside them (`pool_scores`, `source_scores`, `baseline_scores`);
- choose models on the selection source only, never on a test source (`best_architecture`,
  `best_strength`; the sources are `fmlib.realdata.SELECTION_SOURCE` and
  `fmlib.realdata.REAL_TEST_SOURCES`);
- report both training regimes, the paper's protocol (``standard``) and randomized acquisitions
  (``randomized``, the sim-to-real targets' regime), and keep every choice and ranking to the models
  that notebook 03's competence gate passed (`with_competence`, `competent_models`,
  `excluded_text`, `candidate_verdicts`, `seeded_pool`, `regime_targets`, `regime_robustness`,
  `regime_defense`);
- train the two comparisons of the chapter: the best architecture on the real training tiles
  (`fit_real_reference`) and on domain-randomized synthetic images at several strengths
  (`randomized_candidates`, `candidate_scores`), and a sample of a data specification's training
  images (`training_sample`);
- corruptions, attacks and the attack ensemble's robust IoU on a few real tiles spread over an
  image (`spread_tiles`, `robustness_tables`, `robust_tables`);
- the verdicts: whether the chosen synthetic-trained model clears the sim-to-real bar on the DSB
  image (`sim_to_real_bar`, `bar_verdict`); the targets on expert labels, the median architecture
  above Otsu + watershed and the best at the bar, with CIs that resample seeds then nuclei
  (`pixel_counts`, `sim_to_real_targets`); the paper's claim, that models rank alike by
  robustness on synthetic and real images, for corruptions and attacks on absolute scores with the
  paper's ratio beside (`robustness_pairs`, `shared_conditions`); and, apart, whether they rank
  alike by clean IoU, the clean-IoU agreement (`ranking_table`); each a Spearman correlation with a
  bootstrap CI, a permutation p-value and a verdict (`rank_agreement`, `agreement_table`);
- what a change of protocol (resampling to the training diameter, say) does to each method's score,
  paired per method (`protocol_change`, `change_summary`).

Every table is tidy: one row per tile and model (and source, regime or strength), with the
per-tile scores of `fmlib.evaluation.prediction_scores`.
"""

from .agreement import (
    AGREEMENTS,
    CONDITIONS,
    HEADLINE,
    agreement_table,
    long_pairs,
    robustness_pairs,
    shared_conditions,
)
from .changes import change_summary, protocol_change
from .comparisons import (
    Candidate,
    candidate_scores,
    fit_real_reference,
    randomized_candidates,
    training_sample,
)
from .objects import (
    median_against_baseline,
    object_counts,
    object_score_table,
    object_score_values,
    object_scores,
    predicted_instances,
)
from .regimes import (
    candidate_verdicts,
    competent_models,
    excluded_text,
    regime_defense,
    regime_robustness,
    regime_targets,
    seeded_pool,
    with_competence,
)
from .scores import (
    BASELINE,
    BASELINE_REGIME,
    baseline_scores,
    best_architecture,
    best_strength,
    pool_scores,
    robust_tables,
    robustness_tables,
    source_scores,
)
from .targets import TARGETS, cell_counts, nucleus_cells, pixel_counts, sim_to_real_targets
from .tiles import as_tiles, spread_indices, spread_tiles, tile_subset, validation_split
from .verdicts import (
    RANK_MEANINGS,
    RankAgreement,
    SimToRealBar,
    bar_candidates,
    bar_verdict,
    rank_agreement,
    ranking_table,
    sim_to_real_bar,
)

__all__ = [
    "AGREEMENTS",
    "CONDITIONS",
    "HEADLINE",
    "agreement_table",
    "long_pairs",
    "robustness_pairs",
    "shared_conditions",
    "change_summary",
    "protocol_change",
    "median_against_baseline",
    "object_counts",
    "object_score_table",
    "object_score_values",
    "object_scores",
    "predicted_instances",
    "BASELINE",
    "BASELINE_REGIME",
    "Candidate",
    "RANK_MEANINGS",
    "RankAgreement",
    "SimToRealBar",
    "TARGETS",
    "cell_counts",
    "nucleus_cells",
    "pixel_counts",
    "sim_to_real_targets",
    "as_tiles",
    "bar_candidates",
    "bar_verdict",
    "baseline_scores",
    "best_architecture",
    "best_strength",
    "candidate_scores",
    "fit_real_reference",
    "pool_scores",
    "randomized_candidates",
    "training_sample",
    "rank_agreement",
    "ranking_table",
    "robust_tables",
    "robustness_tables",
    "sim_to_real_bar",
    "source_scores",
    "spread_indices",
    "spread_tiles",
    "tile_subset",
    "validation_split",
    "candidate_verdicts",
    "competent_models",
    "excluded_text",
    "regime_defense",
    "regime_robustness",
    "regime_targets",
    "seeded_pool",
    "with_competence",
]
