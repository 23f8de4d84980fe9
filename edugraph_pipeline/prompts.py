"""The production prompts: training (stage 1 and 2) and inference must use exactly these strings.

The answer format is the one `edugraph_pipeline.labels` writes: a JSON object with the three EduGraph
dimensions, every one present, concept names sorted; or the refusal ``{"Error": "UnsupportedMaterial"}``.
That is the *legacy* answer contract (the seed's, upstream's Qwen3-VL 4B deployment's). Upstream's consumers
now also ask for the *v3* contract (``{"areas", "scopes", "abilities"}``, no ``Error`` key: nothing applies,
nothing listed); `V3_SYSTEM_PROMPT` states it for a model asked in that contract (the GGUF's chat template
offers it, `gguf.chat_template`). The model is trained on the legacy prompt; `edugraph serve` answers a v3 request
with the legacy prompt and renders the labels in v3 (`inference.contracts`).
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

LEGACY = "legacy"
V3 = "v3"
ANSWER_FORMATS = (LEGACY, V3)

V3_SYSTEM_PROMPT = (
    "You are an expert in K-4 mathematics education who labels learning material with concepts of the "
    "EduGraph ontology. EduGraph describes a competence in three dimensions: areas (the mathematical topic, "
    "e.g. IntegerAddition), scopes (the range or kind of content, e.g. NumbersSmaller10) and abilities (what the "
    "learner does, e.g. ProcedureExecution). "
    "Answer with a single JSON object and nothing else, in exactly this form: "
    '{"areas": ["..."], "scopes": ["..."], "abilities": ["..."]} '
    "where every list holds EduGraph concept names (sorted, no duplicates, use the most specific concepts "
    "that apply) and is empty, [], where nothing applies. "
    "If the material is not K-4 mathematics learning material, answer with all three lists empty."
)

SYSTEM_PROMPTS = {LEGACY: SYSTEM_PROMPT, V3: V3_SYSTEM_PROMPT}

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

