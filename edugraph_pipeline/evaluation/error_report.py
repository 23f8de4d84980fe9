"""The error report people look at: the validation examples the model got wrong, as one static HTML page.

Upstream's successor audits its errors by hand, to tell model errors from questions of label convention; this page
makes that audit a click. Each wrong example (not a valid output with exactly the gold set) is described by its
issues, per dimension: a label *missed* (gold, not predicted), an *extra* one (predicted, not gold), or labels
*swapped* (the dimension has both: gold ``A`` answered ``B``); plus a refusal where labels were due and the other
way round, and an invalid output. Examples with the same issues form one group, largest first, each with its
thumbnail, gold and predicted sets and the raw output; an index counts every single issue over all examples.
The page is self-contained (thumbnails inline), and every text from the model or the release is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from PIL import Image

from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.ontology.model import DIMENSIONS

THUMBNAIL_SIDE = 240
INVALID = "invalid output"


def issues_of(gold: Mapping, final: Mapping, valid: bool) -> tuple[str, ...]:
    """What is wrong with one answer (`gold` and `final` in the upstream format), as short stable phrases."""
    issues: list[str] = []
    gold_refused, final_refused = gold == UNSUPPORTED_MATERIAL, final == UNSUPPORTED_MATERIAL
    if gold_refused != final_refused:
        issues.append("refused a worksheet" if final_refused else "labelled unsupported material")
    elif not gold_refused:
        for dimension in DIMENSIONS:
            expected, predicted = set(gold.get(dimension, ())), set(final.get(dimension, ()))
            missed, extra = sorted(expected - predicted), sorted(predicted - expected)
            if missed and extra:
                issues.append(f"swapped {dimension}: {' + '.join(missed)} → {' + '.join(extra)}")
            else:
                issues += [f"missed {dimension}: {label}" for label in missed]
                issues += [f"extra {dimension}: {label}" for label in extra]
    if not valid:
        issues.append(INVALID)
    return tuple(issues)


def thumbnail_uri(image: Image.Image, side: int = THUMBNAIL_SIDE) -> str:
    """A PNG thumbnail (longest side `side`) as a data URI."""
    small = image.convert("RGB")
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def wrong_examples(examples: Sequence[Mapping]) -> list[Mapping]:
    return [example for example in examples if not example["exact"]]


def group_errors(examples: Sequence[Mapping]) -> list[tuple[tuple[str, ...], list[Mapping]]]:
    """Wrong examples grouped by their issues, largest group first (ties: by the issues' text)."""
    groups: dict[tuple[str, ...], list[Mapping]] = defaultdict(list)
    for example in wrong_examples(examples):
        groups[issues_of(example["gold"], example["final"], example["valid"])].append(example)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def _labels(answer: Mapping) -> str:
    if answer == UNSUPPORTED_MATERIAL:
        return "<em>unsupported material</em>"
    parts = [f"<b>{d}</b> {html.escape(', '.join(answer.get(d, ())) or '–')}" for d in DIMENSIONS]
    return "<br>".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table.index td, table.index th { padding: 0.15em 0.8em; text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em; width: 290px; font-size: 0.85em; }
.card img { max-width: 100%; border: 1px solid #eee; background: #fff; }
.meta { color: #666; word-break: break-all; }
pre { white-space: pre-wrap; word-break: break-all; font-size: 0.9em; background: #f6f6f6; padding: 0.4em; }
"""


def render_error_report(
    examples: Sequence[Mapping], thumbnails: Mapping[int, str], *, title: str, facts: Mapping[str, str]
) -> str:
    """The page. `examples`: every evaluated example (`evaluate_model`'s records: row, problem_id, view, kind,
    cohort, gold, final, raw, valid, exact); `thumbnails`: row -> data URI; `facts`: shown at the top."""
    wrong = wrong_examples(examples)
    groups = group_errors(examples)
    issue_counts = Counter(issue for issues, members in groups for issue in issues for _ in members)
    anchors = {issues: f"g{index}" for index, (issues, _) in enumerate(groups)}
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>" + "<br>".join(f"<b>{html.escape(k)}</b>: {html.escape(str(v))}" for k, v in facts.items()) + "</p>",
        f"<p>{len(wrong)} of {len(examples)} validation examples are wrong (not a valid output with exactly the "
        f"gold set), in {len(groups)} groups of the same issues.</p>",
        '<h2>Issues</h2><table class="index"><tr><th>Issue</th><th>Examples</th><th>Groups</th></tr>',
    ]
    for issue, count in sorted(issue_counts.items(), key=lambda item: (-item[1], item[0])):
        links = " ".join(f'<a href="#{anchors[issues]}">{anchors[issues]}</a>' for issues, _ in groups
                         if issue in issues)
        out.append(f"<tr><td>{html.escape(issue)}</td><td>{count}</td><td>{links}</td></tr>")
    out.append("</table>")
    for issues, members in groups:
        heading = "; ".join(issues) or "wrong"
        out.append(f'<h2 id="{anchors[issues]}">{html.escape(heading)} ({len(members)})</h2><div class="cards">')
        for example in members:
            image = thumbnails.get(example["row"])
            picture = f'<img src="{image}" alt="row {example["row"]}">' if image else "<p>(no image)</p>"
            out.append(
                f'<div class="card">{picture}'
                f'<p class="meta">row {example["row"]} · {html.escape(str(example.get("cohort", "")))} · '
                f'{html.escape(str(example.get("view", "")))} · {html.escape(str(example.get("problem_id", "")))}</p>'
                f"<p><b>gold</b><br>{_labels(example['gold'])}</p>"
                f"<p><b>predicted</b>{'' if example['valid'] else ' (invalid output, repaired)'}<br>"
                f"{_labels(example['final'])}</p>"
                f"<details><summary>raw output</summary><pre>{html.escape(example['raw'])}</pre></details></div>"
            )
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)
