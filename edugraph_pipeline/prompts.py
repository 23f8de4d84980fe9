"""The production prompts: training (stage 1 and 2) and inference must use exactly these strings.

The answer format is the one `edugraph_pipeline.labels` writes: a JSON object with the three EduGraph
dimensions, every one present, concept names sorted; or the refusal ``{"Error": "UnsupportedMaterial"}``.
"""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are an expert in K-4 mathematics education who labels learning material with concepts of the "
    "EduGraph ontology. EduGraph describes a competence in three dimensions: Area (the mathematical topic, "
    "e.g. IntegerAddition), Scope (the range or kind of content, e.g. NumbersSmaller10) and Ability (what the "
    "learner does, e.g. ProcedureExecution). "
    "Answer with a single JSON object and nothing else, in exactly this form: "
    '{"Area": ["..."], "Scope": ["..."], "Ability": ["..."]} '
    "where every list holds EduGraph concept names (sorted, no duplicates, use the most specific concepts "
    "that apply). "
    "If the material is not K-4 mathematics learning material (for example a photo, a drawing or text "
    'without a math task), answer exactly {"Error": "UnsupportedMaterial"}.'
)

USER_PROMPT = "Label this worksheet with the EduGraph concepts it trains. Answer with the JSON object only."


def classification_messages(answer: str | None = None) -> list[dict]:
    """The chat of one classification: system prompt, user turn with the image, and the answer if given.

    Content is in the structured form ``apply_chat_template`` expects for multimodal processors; the image
    itself is passed separately (``images=[...]``) or filled into the ``{"type": "image"}`` block.
    """
    messages: list[dict] = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": USER_PROMPT}]},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages

