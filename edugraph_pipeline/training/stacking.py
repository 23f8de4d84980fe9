"""Stage 2 on top of a frozen stage-1 adapter, instead of a base with stage 1 merged in (what QLoRA needs).

Under QLoRA the language model is stored in NF4. Merging the knowledge adapter into the bf16 base and quantizing
the result would keep stage 1 only where its change crosses an NF4 level, and a LoRA's change to one weight is
mostly far smaller than one NF4 step (16 levels over a block of 64 weights' range; issue 25's observation, not
measured here), so stage 2 would train on a base that has largely lost stage 1. Stacking keeps it exact, whatever
the sizes: the NF4 base, the knowledge adapter applied in bf16 and frozen, the worksheet adapter trained on
top. The worksheet adapter is PEFT's ``default`` adapter (saved at the top of the adapter folder, as in the
merged case); the knowledge adapter is ``knowledge``. Merging afterwards (`merge.py`) applies base + knowledge +
worksheet in the base's dtype, the same sum either way.

Trainer's resume reloads the adapters of a checkpoint and re-activates only the first active one; the callback
of `keep_knowledge_active` activates both again at the start of training (after any resume, before the first
step) and keeps the knowledge adapter frozen.
"""

from __future__ import annotations

WORKSHEET = "default"  # the adapter stage 2 trains (PEFT's default name: saved at the folder's top)
KNOWLEDGE = "knowledge"  # stage 1's adapter, frozen


def _activate(model) -> None:
    model.base_model.set_adapter([WORKSHEET, KNOWLEDGE])  # the first stays first: Trainer's resume trains it
    for name, parameter in model.named_parameters():
        if f".{KNOWLEDGE}." in name:
            parameter.requires_grad_(False)


def stack_knowledge_adapter(peft_model, knowledge_adapter: str):
    """`peft_model` (the worksheet adapter as ``default``) with the knowledge adapter loaded frozen beside it and
    both active."""
    peft_model.load_adapter(knowledge_adapter, adapter_name=KNOWLEDGE, is_trainable=False)
    _activate(peft_model)
    return peft_model


def frozen_parameters(model) -> dict:
    """The knowledge adapter's parameters (name -> tensor copy), to check that training left them alone."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if f".{KNOWLEDGE}." in name}


def keep_knowledge_active():
    """The TrainerCallback that re-activates both adapters when training starts (after Trainer's resume)."""
    from transformers import TrainerCallback

    class KeepKnowledgeActive(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if model is not None:
                _activate(model)

    return KeepKnowledgeActive()
