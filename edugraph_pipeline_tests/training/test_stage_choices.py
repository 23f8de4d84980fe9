"""Issue 25's training choices on the tiny model, on the CPU: checkpoints on a clock, stage 2's LoRA targets
(`language` leaves the vision tower and projector exactly the base's), and stage 1 stacked frozen under stage 2
(what a QLoRA placement does) with a resume in between."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from edugraph_pipeline.training.device import Placement, PlacementError


class _Crash(Exception):
    pass


def _crash_after(step: int):
    """A callback that raises after `step` (an interrupted run; its last checkpoint is what a resume finds)."""
    from transformers import TrainerCallback

    class CrashAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= step:
                raise _Crash(f"killed after step {state.global_step}")

    return CrashAfter()


def _tensors(folder: Path, prefix: str = "") -> dict:
    import torch

    out = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            out.update({k: handle.get_tensor(k).to(torch.float32) for k in handle.keys() if k.startswith(prefix)})
    return out


def test_a_checkpoint_is_saved_on_the_clock_between_save_steps(stage_cfg, tmp_path):
    from edugraph_pipeline.training.sft import CHECKPOINT_DIR, train_worksheet_adapter

    # save_steps far beyond the run: every save here is the clock's (0.001 min = 60 ms; a step takes longer)
    cfg = stage_cfg("worksheet", max_steps=3, save_steps=100, save_minutes=0.001, save_total_limit=5,
                    work_dir=str(tmp_path / "work"))
    metrics = train_worksheet_adapter(cfg)
    # steps 1 and 2 by the clock; the Trainer saves the last step (3) itself
    assert metrics["timed_saves"] == [1, 2] and metrics["save_minutes"] == 0.001
    folder = Path(cfg.work_dir) / CHECKPOINT_DIR
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    state = json.loads((folder / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_the_clock_is_off_at_zero_and_restarts_on_every_save():
    from transformers import TrainerControl, TrainerState

    from edugraph_pipeline.training.timed_saves import timed_saves

    assert timed_saves(0) is None
    now = [0.0]
    callback = timed_saves(1.0, clock=lambda: now[0])
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(None, state, control)
    for step, seconds in ((1, 30.0), (2, 61.0), (3, 90.0), (4, 125.0)):
        now[0] = seconds
        state.global_step = step
        control.should_save = False
        callback.on_step_end(None, state, control)
        if control.should_save:
            callback.on_save(None, state, control)
    assert callback.timed_steps == [2, 4]  # 61 s after the start, then 64 s after that save
    control.should_save = True  # a save_steps save already asked for: not counted as a timed one
    now[0] = 500.0
    callback.on_step_end(None, state, control)
    assert callback.timed_steps == [2, 4]


@pytest.mark.parametrize("choice", ["language", "all-linear"])
def test_the_lora_target_choice_decides_what_stage_2_adapts(choice, stage_cfg, tiny_base, tmp_path):
    from edugraph_pipeline.training.lora_targets import LANGUAGE_MODEL_LINEAR
    from edugraph_pipeline.training.merge import merge_into_folder, trained_artifact
    from edugraph_pipeline.training.sft import train_worksheet_adapter

    metrics = train_worksheet_adapter(stage_cfg("worksheet", lora_targets=choice, output_dir=str(tmp_path / "out")))
    adapter = Path(metrics["adapter_path"])
    config = json.loads((adapter / "adapter_config.json").read_text())
    adapted = _tensors(adapter)
    vision_adapters = [name for name in adapted if ".visual." in name and "lora_" in name]
    assert metrics["hyperparameters"]["lora_targets"] == choice
    if choice == "language":
        assert config["target_modules"] == LANGUAGE_MODEL_LINEAR and not vision_adapters
    else:
        assert config["target_modules"] == "all-linear" or "qkv" in str(config["target_modules"])
        assert any(".merger." in name for name in vision_adapters)
        assert any(".blocks." in name for name in vision_adapters)
    base, adapters = trained_artifact(adapter.parent)
    merged = tmp_path / "merged"
    merge_into_folder(base, adapters, adapters[-1], merged)
    before, after = _tensors(tiny_base, "model.visual."), _tensors(merged, "model.visual.")
    assert before.keys() == after.keys() and before
    unchanged = all(bool((before[name] == after[name]).all()) for name in before)
    # language: the merged vision tower and projector are the base's, bit for bit (so is the mmproj made from them)
    assert unchanged is (choice == "language")


def test_stage_1_stacked_frozen_trains_resumes_and_merges_like_the_stack(stage_cfg, tmp_path):
    """A QLoRA placement keeps stage 1 a frozen adapter; here the same stacking on the CPU (fp32), with a killed run
    resumed in between: stage 1's weights never move, the saved adapter is stage 2's alone, and base + stage 1 +
    stage 2 merged give the stacked model's logits."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.training.merge import load_with_adapters, trained_artifact
    from edugraph_pipeline.training.sft import CHECKPOINT_DIR, train_knowledge_adapter, train_worksheet_adapter

    knowledge = train_knowledge_adapter(stage_cfg("knowledge", output_dir=str(tmp_path / "k")))["adapter_path"]
    stacked = Placement("cpu", "fp32", 2, 1, False, "test: stacking as under QLoRA", stack_knowledge_adapter=True)
    # a Hub profile's name: no answer-token rows (the tiny profile's, which PEFT cannot stack; refused below)
    cfg = stage_cfg("worksheet", knowledge_adapter=knowledge, max_steps=4, save_steps=2, profile="4b",
                    work_dir=str(tmp_path / "work"), output_dir=str(tmp_path / "w"))
    with pytest.raises(PlacementError, match="answer tokens' embedding rows, which cannot be stacked"):
        train_worksheet_adapter(cfg.with_(profile="tiny"), placement=stacked)
    with pytest.raises(_Crash):
        train_worksheet_adapter(cfg, callbacks=[_crash_after(3)], placement=stacked)
    checkpoint = Path(cfg.work_dir) / CHECKPOINT_DIR / "checkpoint-2"
    assert (checkpoint / "knowledge" / "adapter_model.safetensors").exists()  # both adapters in the checkpoint
    metrics = train_worksheet_adapter(cfg, placement=stacked)
    assert metrics["resumed_from_step"] == 2 and metrics["steps"] == 4
    assert metrics["knowledge_adapter_applied"] == "stacked" and metrics["placement"]["stack_knowledge_adapter"]
    assert not (Path(cfg.work_dir) / "merged-base").exists()  # nothing was merged for stage 2

    original = _tensors(Path(knowledge))
    final_checkpoint = _tensors(Path(cfg.work_dir) / CHECKPOINT_DIR / "checkpoint-4" / "knowledge")
    assert original.keys() == final_checkpoint.keys() and original
    assert all(torch.equal(original[k], final_checkpoint[k]) for k in original)  # stage 1 frozen throughout
    adapter = Path(metrics["adapter_path"])
    assert not (adapter / "knowledge").exists()
    trained = _tensors(adapter)
    assert trained and not any(".knowledge." in name for name in trained)

    base, adapters = trained_artifact(adapter.parent)
    assert adapters == [str(adapter.parent / "knowledge_adapter"), str(adapter)]
    merged = load_with_adapters(base, adapters)
    stack = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), knowledge,
                                      adapter_name="knowledge")
    stack.load_adapter(str(adapter), adapter_name="default")
    stack.base_model.set_adapter(["default", "knowledge"])
    ids = torch.tensor([[151644, 872, 198, 9707, 151645]])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, stack.eval()(input_ids=ids).logits, atol=1e-4)
