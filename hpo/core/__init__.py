"""The training core: datasets as tensors on the device (`data`), models (`models`), the training
and evaluation engine (`engine`), optimizers and schedules (`optim`), on-device augmentation
(`augment`) and checkpoint files (`checkpoint`). Pure computation: it knows nothing of Optuna,
MLflow, a study or the terminal.

May import: the package root (`hpo.errors`, `hpo.config`, `hpo.signals`)."""
