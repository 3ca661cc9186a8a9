"""Model search over transfer-learning backbones for chest X-ray classification.

Importing this package is cheap: TensorFlow loads only where models are built or trained.
"""

from search._errors import SearchError
from search._settings import Settings, check_settings, settings

__all__ = ["SearchError", "Settings", "check_settings", "settings"]
