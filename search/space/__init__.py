"""The search space (TOML ranges, checked up front) and the plain ``TrialConfig`` it yields."""

from search.space._config import TrialConfig
from search.space._space import DEFAULT_SPACE_FILE, Range, SearchSpace, load_space
from search.space._training import PRUNERS, TrainingSettings

__all__ = ["DEFAULT_SPACE_FILE", "PRUNERS", "Range", "SearchSpace", "TrainingSettings", "TrialConfig", "load_space"]
