"""Why the tiny profile loses to a pixel lookup on real worksheets: does a model read the picture, and can the tiny
vision tower learn to tell upstream's generators apart at all? Three probes on the shared release's own split.

    nice -n 5 python bench/vision_probe.py content MODEL_DIR [MODEL_DIR ...]
    nice -n 5 python bench/vision_probe.py generators [--base DIR] [--steps 500] [--lr 1e-3]
    nice -n 5 python bench/vision_probe.py finetune [--base DIR] [--steps 900] [--lr 2e-3]

* ``content``: teacher-forced loss of each validation answer given its own image, and given another validation
  image that the processor turns into the same patch grid (the grid, hence the image-token count and every later
  position id, is then identical: only the picture's content differs). A model that reads the picture has a clearly
  lower loss with its own image; equal losses mean the answer comes from the prompt, the grid size and the answer
  prior alone. Run it on merged model folders (`bench/real_exercises.py --work DIR` keeps them under
  ``DIR/model*/model``) or the tiny base.
* ``generators``: the tiny base's vision tower (patch embedding, blocks, merger) trained end to end with a linear
  head on its mean-pooled output to name the generator of each train image; scored on validation against the
  generator of the 1-nearest-neighbour thumbnail. This bounds what any language model on top of that tower can
  learn about an exercise's look from this release.
* ``finetune``: stage 2 with every parameter of the tiny base trained (the embedding matrix included), the same
  features, loss and schedule shape as the pipeline's stage 2, then merged-model scoring with `evaluate_model`
  and the ``content`` probe: is LoRA's capacity what holds the tiny profile back?

Offline; ``../shared`` is required. The base defaults to a freshly pretrained tiny base (`--base` reuses one).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_exercises import DEFAULT_RELEASE, ONTOLOGY_TAG, Clock, tiny_base, worksheet_dataset  # noqa: E402

from edugraph_pipeline.ontology.parsing import parse_release  # noqa: E402
from edugraph_pipeline_tests.kit.remotes import SHARED_RELEASES, shared_release_files  # noqa: E402


def load_model(folder: str):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from edugraph_pipeline.training.chat_template import training_chat_template

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    return model, processor, training_chat_template(processor, folder)


def same_grid_pairs(processor, images) -> list[tuple[int, int]]:
    """(row, other row) pairs whose images the processor turns into the same patch grid; each row at most once."""
    by_grid: dict[tuple, list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
        by_grid[tuple(grid.tolist())].append(index)
    return [(rows[k], rows[(k + 1) % len(rows)]) for rows in by_grid.values() if len(rows) > 1
            for k in range(len(rows))]


def content_probe(model, processor, template, split, limit: int | None = None) -> dict:
    """Mean answer loss with each row's own image and with a same-grid other image (see the module docstring)."""
    import torch

    from edugraph_pipeline.prompts import classification_messages
    from edugraph_pipeline.training.data import FeatureCollator, encode_chat, masked_lm_loss

    images = [row["image"].convert("RGB") for row in split]
    labels = list(split["labels"])
    pairs = same_grid_pairs(processor, images)[:limit]
    collate = FeatureCollator(processor.tokenizer.pad_token_id)
    was_training = model.training
    model.eval()

    def loss(answer_row: int, image_row: int) -> float:
        feature = encode_chat(processor, classification_messages(labels[answer_row]), [images[image_row]], template)
        with torch.no_grad():
            return float(masked_lm_loss(model, collate([feature])))

    own = sum(loss(i, i) for i, _ in pairs) / len(pairs)
    other = sum(loss(i, j) for i, j in pairs) / len(pairs)
    model.train(was_training)
    return {"pairs": len(pairs), "own_image_loss": own, "other_image_loss": other, "content_gain": other - own}


def print_content(name: str, result: dict) -> None:
    print(f"| {name} | {result['pairs']} | {result['own_image_loss']:.3f} | {result['other_image_loss']:.3f} | "
          f"{result['content_gain']:+.3f} |", flush=True)


CONTENT_HEADER = ("| Model | Pairs | Loss, own image | Loss, same-grid other image | Content gain |\n"
                  "| --- | ---: | ---: | ---: | ---: |")


def run_content(args, dataset) -> None:
    print(CONTENT_HEADER)
    for folder in args.models:
        model, processor, template = load_model(folder)
        print_content(folder, content_probe(model, processor, template, dataset["validation"], args.limit))


def run_generators(args, dataset, base: str) -> None:
    """The vision tower + a linear generator head, trained on train, accuracy on validation every 100 steps."""
    import numpy as np
    import torch

    from edugraph_pipeline.evaluation.baselines import nearest_neighbours, thumbnails

    train, validation = dataset["train"], dataset["validation"]
    memory, queries = thumbnails(r["image"] for r in train), thumbnails(r["image"] for r in validation)
    nearest = nearest_neighbours(memory, queries)
    kinds = list(train["kind"])
    lookup = float(np.mean([kinds[i] == kind for i, kind in zip(nearest, validation["kind"])]))
    print(f"1-NN thumbnail: generator accuracy {lookup:.3f} on {len(validation)} validation rows", flush=True)

    model, processor, _ = load_model(base)
    vision = model.model.visual
    names = sorted(set(kinds))
    index = {name: i for i, name in enumerate(names)}

    def encode(split):
        encoded = []
        for row in split:
            inputs = processor.image_processor(images=[row["image"].convert("RGB")], return_tensors="pt")
            encoded.append((inputs["pixel_values"], inputs["image_grid_thw"], index.get(row["kind"], -1)))
        return encoded

    train_rows, validation_rows = encode(train), encode(validation)
    head = torch.nn.Linear(model.config.text_config.hidden_size, len(names))
    optimizer = torch.optim.AdamW([*head.parameters(), *vision.parameters()], lr=args.lr)

    def logits(pixels, grid):
        return head(vision(pixels, grid_thw=grid).pooler_output.mean(0))

    rng = random.Random(0)
    start = time.perf_counter()
    for step in range(args.steps):
        batch = rng.sample(train_rows, 8)
        loss = torch.nn.functional.cross_entropy(torch.stack([logits(p, g) for p, g, _ in batch]),
                                                 torch.tensor([k for *_, k in batch]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            with torch.no_grad():
                accuracy = np.mean([int(logits(p, g).argmax()) == k for p, g, k in validation_rows])
            print(f"step {step + 1}: train loss {loss.item():.3f}, validation generator accuracy {accuracy:.3f} "
                  f"(chance {1 / len(names):.3f}), {time.perf_counter() - start:.0f} s", flush=True)


def run_finetune(args, dataset, base: str, ontology, work: Path) -> None:
    """Every parameter trained on the release's train split (batch 4, AdamW, warm-up + cosine), then scored."""
    import torch

    from edugraph_pipeline.evaluation.run import evaluate_model
    from edugraph_pipeline.inference.classifier import Classifier
    from edugraph_pipeline.training.data import FeatureCollator, encode_worksheets, masked_lm_loss
    from edugraph_pipeline.training.profiles import profile

    model, processor, template = load_model(base)
    tiny = profile("tiny")
    processor.image_processor.size = {"shortest_edge": tiny.min_pixels, "longest_edge": tiny.max_pixels}
    features = encode_worksheets(processor, dataset["train"], chat_template=template)
    collate = FeatureCollator(processor.tokenizer.pad_token_id)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"full fine-tuning: {sum(p.numel() for p in params):,} parameters, {len(features)} train rows", flush=True)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 30)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (
        1 + math.cos(math.pi * (s - warmup) / max(1, args.steps - warmup))))
    rng, order, running, start = random.Random(0), [], 0.0, time.perf_counter()
    for step in range(args.steps):
        if len(order) < tiny.batch_size:
            fresh = list(range(len(features)))
            rng.shuffle(fresh)
            order.extend(fresh)
        loss = masked_lm_loss(model, collate([features[i] for i in order[: tiny.batch_size]]))
        del order[: tiny.batch_size]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}: loss {running / 100:.4f}, {time.perf_counter() - start:.0f} s", flush=True)
            running = 0.0
    folder = work / "finetuned"
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    ontology.save(folder / "ontology.json")
    report = evaluate_model(Classifier.from_folder(folder), dataset, thresholds="tiny").report
    print("| Area / Scope / Ability micro-F1 | mean | exact | JSON valid |\n| ---: | ---: | ---: | ---: |")
    print(f"| {' / '.join(f'{d.micro_f1:.3f}' for d in report.dimensions.values())} | {report.micro_f1_mean:.3f} "
          f"| {report.exact_match:.3f} | {report.json_valid_rate:.2f} |")
    print(CONTENT_HEADER)
    print_content("fully fine-tuned", content_probe(model, processor, template, dataset["validation"], args.limit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["content", "generators", "finetune"])
    parser.add_argument("models", nargs="*", help="content: merged model folders to probe")
    parser.add_argument("--release", default=str(DEFAULT_RELEASE), help="content source of the release")
    parser.add_argument("--work", help="keep the dataset, base and fine-tuned model here")
    parser.add_argument("--base", help="a pretrained tiny base folder to reuse (default: pretrain one)")
    parser.add_argument("--steps", type=int, help="training steps (generators: 500, finetune: 900)")
    parser.add_argument("--lr", type=float, help="learning rate (generators: 1e-3, finetune: 2e-3)")
    parser.add_argument("--limit", type=int, help="content: at most this many image pairs")
    args = parser.parse_args()
    if args.probe == "content" and not args.models:
        parser.error("content needs at least one model folder")
    args.steps = args.steps or (500 if args.probe == "generators" else 900)
    args.lr = args.lr or (1e-3 if args.probe == "generators" else 2e-3)
    if not (SHARED_RELEASES / ONTOLOGY_TAG).is_dir():
        sys.exit(f"{SHARED_RELEASES / ONTOLOGY_TAG} is absent: the probes need ../shared")
    ontology = parse_release(shared_release_files(ONTOLOGY_TAG), version=ONTOLOGY_TAG, commit="shared")
    clock = Clock()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        dataset = worksheet_dataset(args.release, ontology, work, clock, "release")
        if args.probe == "content":
            run_content(args, dataset)
            return
        base = tiny_base(args, work, clock)
        if args.probe == "generators":
            run_generators(args, dataset, base)
        else:
            run_finetune(args, dataset, base, ontology, work)


if __name__ == "__main__":
    main()
