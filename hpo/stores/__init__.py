"""The two stores and their link: the Optuna study store (`optuna/`, the only importer of optuna),
the MLflow tracking store (`mlflow`, the only importer of mlflow), the keys and vocabulary that tie
them (`link`), one tracked MLflow run (`runs`), the store lock (`locks`), SQLite settings
(`sqlite`), the one retry loop (`backoff`), who owns a record (`owner`), both stores behind one
handle (`workspace`), their agreement (`check`) and the process-wide settings (`runtime`).

May import: the package root and `hpo.core`."""
