"""Runs `hpo ARGS` in this process after arranging one fault at an exact moment, delivered as a
real signal to this process, so tests can hit phases that timing alone cannot:

    python tests/fault_driver.py FAULT hpo-args...

FAULT: sigint-in-validation | sigterm-in-validation | sigint-in-upload | sigkill-in-upload |
sigkill-before-tell (after the trial's MLflow run is closed, before Optuna is told) |
slow-claim (a test look's claim takes a second to write: the window a lock must close) |
slow-epochs (every validation pass sleeps 0.7 s: trials long enough to kill a host mid-trial)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _signal_during(owner: Any, name: str, sig: int, *, on_call: int = 1) -> None:
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == on_call:
            if sig == signal.SIGKILL:
                original(*args, **kwargs)  # the upload lands on disk; the run is never closed
            os.kill(os.getpid(), sig)  # SIGINT/SIGTERM: raised here, in the middle of the call
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def main() -> None:
    fault, args = sys.argv[1], sys.argv[2:]
    import hpo.core.engine
    from hpo.stores.mlflow import MlflowStore

    if fault in ("sigint-in-validation", "sigterm-in-validation"):
        sig = signal.SIGINT if fault.startswith("sigint") else signal.SIGTERM
        _signal_during(hpo.core.engine, "evaluate", sig, on_call=2)  # epoch 2's validation pass
    elif fault == "sigint-in-upload":
        _signal_during(MlflowStore, "log_dir", signal.SIGINT)
    elif fault == "sigkill-in-upload":
        _signal_during(MlflowStore, "log_dir", signal.SIGKILL)
    elif fault == "sigkill-before-tell":
        from hpo.stores.optuna import TrialHandle

        def killed(*_args: object, **_kwargs: object) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        TrialHandle.tell = killed  # type: ignore[method-assign]
    elif fault == "slow-claim":
        import time

        from hpo.stores import link
        from hpo.stores.optuna import StudyHandle

        real_set_attr = StudyHandle.set_attr

        def slow(self: StudyHandle, key: str, value: object) -> None:
            if key == link.TEST_EVALUATIONS:
                time.sleep(1.0)
            real_set_attr(self, key, value)

        StudyHandle.set_attr = slow  # type: ignore[method-assign]
    elif fault == "slow-epochs":
        import time

        real_evaluate = hpo.core.engine.evaluate

        def slow_evaluate(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.7)
            return real_evaluate(*args, **kwargs)

        hpo.core.engine.evaluate = slow_evaluate
    else:
        raise SystemExit(f"unknown fault {fault}")
    from hpo.cli import app

    sys.argv = ["hpo", *args]
    app()


if __name__ == "__main__":
    main()
