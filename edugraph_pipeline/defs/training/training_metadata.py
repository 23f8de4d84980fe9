"""What the training assets show on their pages: a loss curve in place, a short loss table, rounded figures."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from edugraph_pipeline.charts import inline_line_chart
from edugraph_pipeline.training.device import placement_markdown

LOSS_TABLE_ROWS = 12  # enough to read the trend; the curve shows the rest


def loss_curve(history: list) -> dg.MarkdownMetadataValue:
    if len(history) < 2:
        return dg.MetadataValue.md("No loss curve: fewer than two logged steps.")
    steps = [int(step) for step, _ in history]
    losses = [float(value) for _, value in history]
    best = min(range(len(losses)), key=losses.__getitem__)
    caption = (
        f"training loss {losses[0]:.3f} → {losses[-1]:.3f} over steps {steps[0]:,}–{steps[-1]:,} "
        f"(lowest {losses[best]:.3f} at step {steps[best]:,})"
    )
    return dg.MetadataValue.md(inline_line_chart(losses, alt="loss curve", caption=caption))


def loss_table(history: list, rows: int = LOSS_TABLE_ROWS) -> dg.TableMetadataValue:
    stride = max(1, -(-len(history) // rows))
    picked = history[::stride]
    if history and picked[-1] != history[-1]:
        picked = [*picked[: rows - 1], history[-1]]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"step": int(s), "loss": round(float(v), 4)}) for s, v in picked],
        schema=dg.TableSchema(columns=[dg.TableColumn("step", "int"), dg.TableColumn("loss", "float")]),
    )


def _relocate(value, staging: Path, final: Path):
    """Paths the step reported inside the staging folder, as they read after publishing."""
    if isinstance(value, str) and value.startswith(str(staging)):
        return str(final) + value[len(str(staging)) :]
    return value


def step_figures(metrics: dict) -> dict:
    """Figures every training step reports (rounded for reading)."""
    return {
        "wall_time_s": round(float(metrics.get("wall_time_s") or 0.0), 1),
        "device": metrics.get("device") or "unknown",
        "peak_memory_mb": round(int(metrics.get("peak_memory_bytes") or 0) / 2**20, 1),
        "loss_curve": loss_curve(metrics.get("loss_history") or []),
        "loss_table": loss_table(metrics.get("loss_history") or []),
    }


def placement_figures(placement: dict) -> dict:
    """Where and how the step trained (`device.Placement`): a small table, and the precision as a figure."""
    if not placement:
        return {}
    return {"precision": placement.get("precision") or "unknown",
            "placement": dg.MetadataValue.md(placement_markdown(placement))}


def adapter_metadata(metrics: dict, staging: Path, final: Path, extra: dict) -> dict:
    m = {k: _relocate(v, staging, final) for k, v in metrics.items()}
    return {
        "adapter_path": dg.MetadataValue.path(m["adapter_path"]),
        "base_model": m.get("base_model"),
        "base_model_revision": m.get("base_model_revision") or "unknown",
        "hyperparameters": dg.MetadataValue.json(m.get("hyperparameters") or {}),
        "trainable_parameters": int(m.get("trainable_parameters") or 0),
        "total_parameters": int(m.get("total_parameters") or 0),
        "train_samples": int(m.get("train_samples") or 0),
        "steps": int(m.get("steps") or 0),
        "resumed_from_step": m.get("resumed_from_step") if m.get("resumed_from_step") is not None else -1,
        "samples_per_s": round(float(m.get("samples_per_s") or 0.0), 2),
        "tokens_per_s": round(float(m.get("tokens_per_s") or 0.0), 1),
        "train_loss": round(float(m.get("train_loss") or 0.0), 4),
        **placement_figures(m.get("placement") or {}),
        **step_figures(m),
        **extra,
    }
