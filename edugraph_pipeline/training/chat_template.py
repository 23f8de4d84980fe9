"""The chat template a stage trains on: the base model's own, with ``{% generation %}`` markers for the answer.

Answer-only loss needs the assistant answer marked in the template (``return_assistant_tokens_mask``). The Hub's
Qwen3-VL template has no markers; trl ships a training variant of it (and of other known templates) and derives
it with `get_training_chat_template`. Only the training tokenization uses that variant: the processor saved with
the adapters and the merged model keep the base's inference template unchanged.
"""

from __future__ import annotations


class ChatTemplateError(ValueError):
    """The base model's chat template cannot mark the assistant answer: training would learn nothing or everything."""


def training_chat_template(processor, source: str) -> str:
    """The base's template if it has generation markers, else trl's training variant of it; fails for others."""
    import trl
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = processor.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise ChatTemplateError(f"{source}: the processor has no chat template (chat_template.json/.jinja is missing)")
    if has_generation_markers(template):
        return template
    try:
        derived = get_training_chat_template(processor)
    except ValueError:
        raise ChatTemplateError(
            f"{source}: its chat template has no {{% generation %}}/{{% endgeneration %}} markers around the "
            f"assistant answer, and trl {trl.__version__} has no training variant of it, so the answer cannot be "
            f"told from the prompt. Add the markers around each assistant message (including its end-of-turn "
            f"token) in the base's chat template, or use a base whose template trl knows (Qwen3-VL's is)."
        ) from None
    return derived or template
