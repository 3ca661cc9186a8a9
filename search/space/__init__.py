"""The search space (TOML ranges, checked up front) and the plain ``TrialConfig`` it yields."""

from search.space._config import TrialConfig
from search.space._space import DEFAULT_SPACE_FILE, Range, SearchSpace, TrainingSettings, load_space

__all__ = ["DEFAULT_SPACE_FILE", "Range", "SearchSpace", "TrainingSettings", "TrialConfig", "load_space"]
