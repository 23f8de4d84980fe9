"""The chat template the exported GGUF carries: the merged model's own, behind a prelude of production defaults.

Upstream's deployed GGUF classified an image-only chat request because its system prompt was baked into the
published chat template. Ours does the same, in any server that renders the GGUF's template (llama.cpp's
``llama-server``): before the model's own template runs, the prelude

* adds the production system prompt (`prompts.SYSTEM_PROMPT`) when the conversation starts without a system
  message, or the v3 one (`prompts.V3_SYSTEM_PROMPT`) when ``chat_template_kwargs`` carries
  ``"answer_format": "v3"``;
* adds the production user prompt (`prompts.USER_PROMPT`) to a user message that holds no text (an image only),
  whether its content is a list of parts (transformers) or a string with llama-server's media markers.

A conversation that has both (what `edugraph classify` renders) passes through unchanged, so the GGUF backend's
prompt is byte for byte the one the model was trained on (`test_gguf_fast` renders both).
"""

from __future__ import annotations

import json
from pathlib import Path

from edugraph_pipeline.prompts import LEGACY, SYSTEM_PROMPTS, USER_PROMPT, V3

PRELUDE_MARK = "{#- edugraph: production prompts as defaults -#}"
TEMPLATE_FILE = "chat_template.jinja"
# llama-server puts a marker in place of each image of string content: "<__media_<random>__>" (random per process
# unless LLAMA_MEDIA_MARKER pins one; older builds: "<__media__>"). Text is what is left around the markers.
MEDIA_MARKER_START, MEDIA_MARKER_END = "<__media", "__>"


def _literal(text: str) -> str:
    """`text` as a single-quoted Jinja string literal (the prompts hold no quote, backslash or line break)."""
    if any(char in text for char in "'\\\n"):
        raise ValueError(f"a prompt for the chat template holds a quote, backslash or line break: {text[:60]!r}")
    return f"'{text}'"


def prelude() -> str:
    return "".join((
        PRELUDE_MARK,
        "{%- set edugraph = namespace(messages=[], has_text=false, text='') -%}",
        f"{{%- set edugraph_system = {_literal(SYSTEM_PROMPTS[LEGACY])} -%}}",
        f"{{%- if answer_format is defined and answer_format == '{V3}' -%}}"
        f"{{%- set edugraph_system = {_literal(SYSTEM_PROMPTS[V3])} -%}}{{%- endif -%}}",
        f"{{%- set edugraph_user = {_literal(USER_PROMPT)} -%}}",
        "{%- if messages | length == 0 or messages[0].role != 'system' -%}",
        "{%- set edugraph.messages = [{'role': 'system', 'content': edugraph_system}] -%}",
        "{%- endif -%}",
        "{%- for message in messages -%}",
        "{%- set edugraph.has_text = false -%}",
        "{%- if message.content is string -%}",
        # llama-server's media markers are "<__media_<random>__>": keep only the text around them
        "{%- set edugraph.text = '' -%}",
        f"{{%- for piece in message.content.split('{MEDIA_MARKER_START}') -%}}",
        "{%- if loop.first -%}{%- set edugraph.text = edugraph.text + piece -%}",
        f"{{%- else -%}}{{%- set edugraph.text = edugraph.text + piece.split('{MEDIA_MARKER_END}', 1)[-1] -%}}"
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if edugraph.text | trim -%}{%- set edugraph.has_text = true -%}{%- endif -%}",
        "{%- elif message.content is not none -%}",
        "{%- for part in message.content -%}",
        "{%- if part.type == 'text' and part.text | trim -%}{%- set edugraph.has_text = true -%}{%- endif -%}",
        "{%- endfor -%}",
        "{%- endif -%}",
        "{%- if message.role == 'user' and not edugraph.has_text -%}",
        "{%- if message.content is string -%}",
        "{%- set edugraph.messages = edugraph.messages + [{'role': 'user', 'content': message.content + edugraph_user}]"
        " -%}",
        "{%- else -%}",
        "{%- set edugraph.messages = edugraph.messages + [{'role': 'user', 'content': message.content + "
        "[{'type': 'text', 'text': edugraph_user}]}] -%}",
        "{%- endif -%}",
        "{%- else -%}",
        "{%- set edugraph.messages = edugraph.messages + [message] -%}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- set messages = edugraph.messages -%}",
    ))


def with_default_prompts(template: str) -> str:
    """`template` behind the prelude (once: a template that has it already is returned as it is)."""
    return template if template.startswith(PRELUDE_MARK) else prelude() + template


def model_template(model_folder: Path) -> str:
    """The chat template a saved model folder carries (``chat_template.jinja``, ``chat_template.json`` or
    ``tokenizer_config.json``, the order transformers 5 saves and llama.cpp's converter reads them in reverse)."""
    config = model_folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str) and template:
            return template
    if (model_folder / TEMPLATE_FILE).is_file():
        return (model_folder / TEMPLATE_FILE).read_text(encoding="utf-8")
    if (model_folder / "chat_template.json").is_file():
        template = json.loads((model_folder / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str) and template:
            return template
    raise ValueError(f"{model_folder}: no chat template (chat_template.jinja, chat_template.json, tokenizer_config.json)")


def write_served_template(model_folder: Path, source: Path) -> None:
    """Put the served template into `source` (a folder of links to `model_folder`'s files) where the converter
    reads it; the model folder itself is never written."""
    template = with_default_prompts(model_template(model_folder))
    config = model_folder / "tokenizer_config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        if "chat_template" in data:
            data["chat_template"] = template
            (source / config.name).unlink(missing_ok=True)
            (source / config.name).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    (source / TEMPLATE_FILE).unlink(missing_ok=True)
    (source / TEMPLATE_FILE).write_text(template, encoding="utf-8")
