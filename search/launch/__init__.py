"""``python -m search.launch``: run a model search on a chest X-ray dataset.

Creates the results schema and the study once, then runs local worker processes that share
the study database. Re-running with the same --study resumes it. The parent process never
loads TensorFlow: the workers do.
"""

from search.launch._args import DEFAULT_STUDY, parse_args
from search.launch._main import main
from search.launch._plan import Plan, prepare
from search.launch._summary import top_table
from search.launch._supervise import run_tuner, run_workers

__all__ = ["DEFAULT_STUDY", "Plan", "main", "parse_args", "prepare", "run_tuner", "run_workers", "top_table"]
