"""How a trained trial ends, decided from its fit alone: `trial_end` (a frozen `link.TrialEnd`),
and the guards that stop a trial early whatever the pruner says (chance level after its first
epoch, --trial-timeout)."""

from __future__ import annotations

import statistics

from hpo.core.engine import FitResult
from hpo.stores.link import TrialEnd
from hpo.stores.runs import outcome_of

CHANCE_FACTOR = 2  # pruned at once: first-epoch validation accuracy <= 2 x 1/classes


def trial_end(result: FitResult, *, guard: str, budget: bool = False) -> TrialEnd:
    """The end of a trained trial, from its fit and the guard that stopped it ("" if none).
    Stopped by the call's --budget (`budget`), it is complete with its best epoch, said to be cut
    short; with no epoch finished, it is interrupted and runs again on resume."""
    last = result.history[-1].epoch if result.history else 0
    seconds = statistics.median(m.epoch_seconds for m in result.history) if result.history else 0.0
    if budget and result.outcome != "diverged":
        if result.best_epoch == 0:
            return TrialEnd(
                outcome="interrupted", reason="budget: the call's --budget ran out before its first epoch"
            )
        reason = f"budget: the call's --budget ran out after {last} of its epochs; its best epoch counts"
        return TrialEnd(
            outcome="completed",
            value=result.best_val_accuracy,
            epochs_run=last,
            best_epoch=result.best_epoch,
            reason=reason,
            epoch_seconds=seconds,
        )
    outcome = outcome_of(result)
    reason = f"diverged: non-finite loss at epoch {last}" if outcome == "diverged" else guard
    return TrialEnd(
        outcome=outcome,
        value=result.best_val_accuracy,
        epochs_run=last,
        best_epoch=result.best_epoch,
        reason=reason,
        epoch_seconds=seconds,
    )


def chance_reason(*, epoch: int, val_accuracy: float, classes: int) -> str:
    """Why to prune a trial at chance level after its first epoch ("" to go on): validation
    accuracy at or below CHANCE_FACTOR x 1/classes, whatever the pruner's start-up rules say."""
    limit = CHANCE_FACTOR / classes
    if epoch == 1 and val_accuracy <= limit:
        accuracy = f"{100 * val_accuracy:.1f}%"
        return f"chance level: {accuracy} validation accuracy after epoch 1 (<= {100 * limit:.0f}%)"
    return ""


def budget_reason(*, seconds: float, budget: float | None) -> str:
    """Why to stop a trial whose training has run `seconds` ("" to go on): past the search's
    --trial-timeout. Checked after each epoch, so a trial overruns it by at most one epoch."""
    if budget is not None and seconds > budget:
        return f"time budget: {seconds:.0f} s of training, past --trial-timeout {budget:g} s"
    return ""
