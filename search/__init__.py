"""Model search over transfer-learning backbones for chest X-ray classification.

Importing this package is cheap: TensorFlow loads only where models are built or trained.
"""

from search._errors import SearchError

__all__ = ["SearchError"]
