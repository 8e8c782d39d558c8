"""What a finished study gives: the test-set lockbox (`lockbox`), ensembles (`ensemble`), figures
and the report (`figures`, the only importer of matplotlib; `report`), the Model Registry
(`registry`), predictions on image files (`images`, `predict`), retraining a trial
(`reproduce`), classical baselines (`baselines`, the only importer of scikit-learn) and the result
browsers (`browsers`: the MLflow UI, optuna-dashboard).

May import: the package root, `hpo.core`, `hpo.stores` and `hpo.search`."""
