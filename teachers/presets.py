"""Named sets of teacher options from the literature, e.g. ``make_teacher(name, space,
preset("teachmyagent_stump_tracks", name))``.

``teachmyagent_stump_tracks``: the settings TeachMyAgent's benchmark ran on Stump Tracks (Romac,
Portelas et al., ICML 2021; ``flowersteam/TeachMyAgent`` ``benchmark_scripts/full_benchmark_*.txt`` and
``TeachMyAgent/run_utils/teacher_args_handler.py``): ALP-GMM fit rate 150, 5 % random tasks, k = 2..9;
Covar-GMM fit rate 150, 10 % random tasks, k = 2..14; RIAC max region 150, 75 split attempts, minimum
range ratio 0.1; GMM teachers in raw task units (TeachMyAgent does not normalise tasks); the Oracle
with teachDeepRL's Stump Tracks step (+0.1 height, -0.2 spacing).
"""

from __future__ import annotations

from typing import Any

from teachers.alp_gmm import ALPGMMConfig
from teachers.covar_gmm import CovarGMMConfig
from teachers.oracle import OracleConfig
from teachers.riac import RIACConfig

PRESETS: dict[str, dict[str, Any]] = {
    "teachmyagent_stump_tracks": {
        "alp_gmm": ALPGMMConfig(fit_rate=150, random_task_ratio=0.05, k_min=2, k_max=9,
                                normalise_tasks=False),
        "covar_gmm": CovarGMMConfig(fit_rate=150, random_task_ratio=0.10, k_min=2, k_max=14,
                                    normalise_tasks=False),
        "riac": RIACConfig(max_region_size=150, nb_split_attempts=75, min_dims_range_ratio=0.1),
        "oracle": OracleConfig(step=(0.1, -0.2)),
    },
}


def preset(name: str, teacher: str) -> Any | None:
    """The options of ``teacher`` in preset ``name`` (None: the preset leaves it at its defaults)."""
    if name not in PRESETS:
        raise ValueError(f"unknown teacher preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name].get(teacher)
