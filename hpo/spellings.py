"""One name per hyperparameter: the config field (`hpo.config`), the MLflow param of every run
(`config.as_params`), the column of `hpo trials`, the `hpo train` flag and the search-space keys.
A table only: tests/unit/test_config.py checks it against the code, docs/COMMANDS.md prints it."""

from __future__ import annotations

# Per-layer space keys get a suffix _0, _1... (search/space.py).
SPELLINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (hpo train flag, search-space keys)
    "family": ("--model", ("family",)),
    "hidden": ("--hidden", ("mlp_layers", "mlp_width")),
    "channels": ("--channels", ("cnn_blocks", "cnn_channels", "res_stages", "res_width")),  # CNN, ResNet
    "kernel_size": ("--kernel-size", ("cnn_kernel",)),
    "padding": ("--padding", ()),  # searched CNNs always use "same"
    "fc_width": ("--fc-width", ("cnn_fc_width",)),
    "convs_per_block": ("--convs-per-block", ("cnn_convs",)),
    "head": ("--head", ("cnn_head",)),
    "conv": ("--conv", ("cnn_conv",)),
    "res_blocks": ("--res-blocks", ("res_blocks",)),
    "activation": ("--activation", ("activation",)),
    "dropout": ("--dropout", ("dropout",)),
    "batch_norm": ("--batch-norm", ("batch_norm",)),
    "optimizer": ("--optimizer", ("optimizer",)),
    "lr": ("--lr", ("lr_sgd", "lr_adaptive")),  # sgd, and adam/adamw/rmsprop
    "momentum": ("--momentum", ("momentum",)),
    "nesterov": ("--nesterov", ()),
    "weight_decay": ("--weight-decay", ("weight_decay",)),
    "schedule": ("--schedule", ("schedule",)),
    "gamma": ("--gamma", ("gamma",)),
    "batch_size": ("--batch-size", ("batch_size",)),
    "epochs": ("--epochs", ()),  # a search's --epochs is the study's maximum per trial
    "augment": ("--augment", ("augment",)),
    "label_smoothing": ("--label-smoothing", ("label_smoothing",)),
}
