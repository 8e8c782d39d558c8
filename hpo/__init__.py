"""hpo: hyperparameter search with persistent experiment tracking for small image classifiers."""

__version__ = "0.1.0"
