"""The Dagster UI in a real browser: the asset graph draws every pipeline asset and every dependency edge, and a
materialization launched from the UI runs to success.

Starts `dagster-webserver` (and `dagster-daemon run`, which dequeues runs) on 127.0.0.1 and drives Debian's
headless Chromium with Playwright. Skips with a reason where /usr/bin/chromium or playwright is absent, or where
../shared (the ontology releases) is. Screenshots go to the test's tmp_path (printed) and, if the environment
variable EDUGRAPH_UI_SCREENSHOTS names a folder, are copied there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

GRAPH_SVG = "svg[class*=svgContainer]"

# Asset nodes (non-group foreignObjects carrying the AssetNameRow tooltip) and edge paths of the graph's SVG, in
# the SVG's own coordinates: an edge leaves its source at the node's right side and ends (arrowhead) just left
# of its target's left side.
READ_GRAPH_JS = """
(svgSelector) => {
  const svg = document.querySelector(svgSelector);
  if (!svg) return {nodes: [], paths: []};
  const nodes = [...svg.querySelectorAll(':scope > foreignObject:not(.group)')]
    .map((fo) => ({
      name: fo.querySelector('[data-tooltip]')?.getAttribute('data-tooltip'),
      x: +fo.getAttribute('x'), y: +fo.getAttribute('y'),
      width: +fo.getAttribute('width'), height: +fo.getAttribute('height'),
    }))
    .filter((node) => node.name);
  const paths = [...svg.querySelectorAll(':scope > path[marker-end]')].map((path) => path.getAttribute('d'));
  return {nodes, paths};
}
"""
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
EDGE_END_TOLERANCE = 15  # SVG units between a path's end and its node's side (the arrowhead gap is 5)


def expected_graph() -> tuple[set[str], set[tuple[str, str]]]:
    from edugraph_pipeline.definitions import defs as load_definitions

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    nodes = {key.to_user_string() for key in graph.get_all_asset_keys()}
    edges = {
        (parent.to_user_string(), key.to_user_string())
        for key in graph.get_all_asset_keys()
        for parent in graph.get(key).parent_keys
    }
    return nodes, edges


def drawn_edges(nodes: list[dict], paths: list[str]) -> tuple[set[tuple[str, str]], list[str]]:
    """(source, target) of each drawn path, matched to the nodes its two ends touch; unmatched paths returned too."""

    def touching(x: float, y: float, side: str) -> list[str]:
        return [
            node["name"]
            for node in nodes
            if abs(x - (node["x"] + node["width"] if side == "right" else node["x"])) <= EDGE_END_TOLERANCE
            and node["y"] <= y <= node["y"] + node["height"]
        ]

    edges, unmatched = set(), []
    for d in paths:
        numbers = [float(n) for n in NUMBER.findall(d)]
        sources = touching(numbers[0], numbers[1], "right")
        targets = touching(numbers[-2], numbers[-1], "left")
        if len(sources) == 1 and len(targets) == 1:
            edges.add((sources[0], targets[0]))
        else:
            unmatched.append(f"{d}: sources {sources}, targets {targets}")
    return edges, unmatched


class Screenshots:
    def __init__(self, folder: Path):
        self.folder = folder
        self.extra = Path(os.environ["EDUGRAPH_UI_SCREENSHOTS"]) if os.environ.get("EDUGRAPH_UI_SCREENSHOTS") else None

    def take(self, page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path))
        if self.extra:
            self.extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.extra / path.name)
        print(f"screenshot: {path}" + (f" (copied to {self.extra})" if self.extra else ""))
        return path


def test_asset_graph_draws_every_asset_and_edge_and_materializes_from_the_ui(dagster_ui, browser_page, screenshot_dir):
    from playwright.sync_api import expect

    page = browser_page
    shots = Screenshots(screenshot_dir)
    expected_nodes, expected_edges = expected_graph()
    # The definitions are the reference; make sure they are the whole pipeline, not an empty graph.
    pipeline = {"ontology_release", "knowledge_dataset", "worksheet_dataset", "knowledge_adapter", "trained_adapter",
                "merged_model", "model_evaluation", "hf_publication"}
    assert pipeline <= set(expected_nodes) and ("merged_model", "model_evaluation") in expected_edges

    # --- The global asset graph, every group expanded (the UI's own "Expand all groups", ⌥E). ---
    page.goto(f"{dagster_ui.url}/asset-groups")
    expect(page.get_by_text("Global asset lineage").first).to_be_visible()
    page.get_by_text("Hide navigation").click()
    graph = page.locator(GRAPH_SVG)
    expect(graph).to_be_visible()
    page.keyboard.press("Alt+e")
    # Edges are computed in a web worker after the layout: wait until the drawing settles with every node.
    page.wait_for_function(
        """([selector, nodeCount, edgeCount]) => {
             const svg = document.querySelector(selector);
             return svg
               && svg.querySelectorAll(':scope > foreignObject:not(.group) [data-tooltip]').length >= nodeCount
               && svg.querySelectorAll(':scope > path[marker-end]').length >= edgeCount;
           }""",
        arg=[GRAPH_SVG, len(expected_nodes), len(expected_edges)],
        timeout=30_000,
    )
    page.wait_for_timeout(500)
    drawing = page.evaluate(READ_GRAPH_JS, GRAPH_SVG)
    shots.take(page, "asset-graph")

    drawn_nodes = [node["name"] for node in drawing["nodes"]]
    assert sorted(drawn_nodes) == sorted(expected_nodes), "asset nodes drawn != the code location's assets"
    for name in expected_nodes:
        node = graph.locator(f"foreignObject:not(.group) [data-tooltip='{name}']").first
        expect(node).to_be_visible()
        expect(node).to_be_in_viewport()
        expect(node).to_have_text(name)
    edges, unmatched = drawn_edges(drawing["nodes"], drawing["paths"])
    assert not unmatched, f"edge paths not joining two asset nodes: {unmatched}"
    assert len(drawing["paths"]) == len(expected_edges), (
        f"{len(drawing['paths'])} paths for {len(expected_edges)} edges"
    )
    assert edges == expected_edges, (
        f"missing edges: {sorted(expected_edges - edges)}; unexpected edges: {sorted(edges - expected_edges)}"
    )

    # --- Materialize ontology_release for the partition v0.4.0 from the asset's page. ---
    page.goto(f"{dagster_ui.url}/assets/ontology_release")
    page.locator("button", has_text="Materialize…").first.click()
    dialog = page.locator("[role=dialog].dagster-dialog")  # the launch dialog (the partition picker is a dialog too)
    expect(dialog).to_contain_text("Launch runs to materialize ontology_release")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill("v0.4.0")
    page.get_by_role("menuitem").filter(has_text=re.compile(r"^\s*v0\.4\.0")).first.click()
    page.get_by_placeholder("Filter partitions").press("Escape")  # closes the partition picker, not the dialog
    expect(page.get_by_placeholder("Filter partitions")).to_be_hidden()
    expect(dialog).to_contain_text("1 partition")
    shots.take(page, "launch-dialog")
    launch = dialog.get_by_role("button", name=re.compile(r"^Launch"))
    expect(launch).to_be_enabled()
    launch.click()

    with dagster_ui.instance() as instance:
        deadline = time.monotonic() + 60
        run = None
        while time.monotonic() < deadline:
            runs = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == "v0.4.0"]
            run = runs[0] if runs else None
            if run is not None and run.is_finished:
                break
            time.sleep(0.5)
        assert run is not None, f"no run for v0.4.0 was launched from the UI\n{dagster_ui.log_tail()}"
        assert run.status.value == "SUCCESS", f"run {run.run_id} ended {run.status}\n{dagster_ui.log_tail()}"
        assert run.asset_selection and {k.to_user_string() for k in run.asset_selection} == {"ontology_release"}
        assert len([r for r in instance.get_runs()]) == 1, "exactly one run: only the chosen partition"

    assert (dagster_ui.data_dir / "ontology_release" / "v0.4.0" / "ontology.json").is_file()
    assert not (dagster_ui.data_dir / "ontology_release" / "v0.3.0").exists()

    page.goto(f"{dagster_ui.url}/runs/{run.run_id}")
    expect(page.get_by_text("Success").first).to_be_visible()
    expect(page.get_by_text("partition: v0.4.0").first).to_be_visible()
    expect(page.get_by_text(re.compile("Finished execution of run")).first).to_be_visible(timeout=30_000)
    shots.take(page, "run")


def open_launchpad(page, url: str, asset: str):
    """The asset page's Materialize menu → "Open launchpad" (confirming the missing-upstream warning if shown)."""
    from playwright.sync_api import expect

    page.goto(f"{url}/assets/{asset}")
    buttons = page.locator("button")
    expect(buttons.filter(has_text="Materialize").first).to_be_visible()
    buttons.nth(buttons.all_inner_texts().index("Materialize") + 1).click()  # the menu beside "Materialize"
    page.get_by_role("menuitem", name="Open launchpad").click()
    confirm = page.get_by_role("button", name="Confirm")
    title = page.get_by_text("Launchpad (configure assets)")
    expect(confirm.or_(title).first).to_be_visible()
    if confirm.is_visible():
        confirm.click()
    expect(title).to_be_visible()
    expect(page.locator(".CodeMirror").first).to_be_visible()
    return page  # the launchpad is the page's only dialog now


def test_training_knobs_are_chosen_in_the_launchpad(dagster_ui, browser_page, screenshot_dir):
    """trained_adapter's launchpad offers the profile and run mode; base_model launched from its launchpad with
    `profile: tiny, run_mode: test` records both in the run's config and the artifact's lineage, and its page shows
    the loss curve in place with rounded numbers."""
    from playwright.sync_api import expect

    page = browser_page
    shots = Screenshots(screenshot_dir)
    launchpad = open_launchpad(page, dagster_ui.url, "trained_adapter")
    editor = launchpad.locator(".CodeMirror").first
    # Every knob is in the editor from the start (empty: the environment variable's value, read when the run starts).
    for knob in ('profile: ""', 'run_mode: ""', 'base_model: ""', 'device: ""', 'knowledge_adapter: ""'):
        expect(editor).to_contain_text(knob)
    expect(editor).to_contain_text("env: EDUGRAPH_DATA_DIR")  # resources are bound to EnvVars, not to copied values
    shots.take(page, "trained-adapter-launchpad")

    launchpad = open_launchpad(page, dagster_ui.url, "base_model")
    editor = launchpad.locator(".CodeMirror").first
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text("ops:\n  base_model:\n    config:\n      profile: tiny\n      run_mode: test\n")
    expect(launchpad.get_by_text("No errors")).to_be_visible()
    launchpad.get_by_role("button", name="Materialize").last.click()

    with dagster_ui.instance() as instance:
        deadline = time.monotonic() + 300
        run = None
        while time.monotonic() < deadline:
            runs = [r for r in instance.get_runs() if r.asset_selection and dg_key("base_model") in r.asset_selection]
            run = runs[0] if runs else None
            if run is not None and run.is_finished:
                break
            time.sleep(1)
        assert run is not None and run.is_finished, f"base_model was not run from the launchpad\n{dagster_ui.log_tail()}"
        assert run.status.value == "SUCCESS", f"run {run.run_id} ended {run.status}\n{dagster_ui.log_tail()}"
        assert run.run_config["ops"]["base_model"]["config"] == {"profile": "tiny", "run_mode": "test"}
    lineage = json.loads((dagster_ui.data_dir / "base_model" / "latest" / "lineage.json").read_text())
    assert (lineage["profile"], lineage["run_mode"]) == ("tiny", "test")

    page.goto(f"{dagster_ui.url}/assets/base_model")
    curve = page.locator("img[alt='loss curve']").first
    expect(curve).to_be_visible()  # in place, not behind "[Show Markdown]"
    assert curve.evaluate("image => image.naturalWidth") > 100
    expect(page.get_by_text(re.compile(r"training loss \d+\.\d{3} → \d+\.\d{3}")).first).to_be_visible()
    long_numbers = page.evaluate(  # what a cell or label shows on its own: no 16-digit floats to read
        r"""() => [...document.querySelectorAll('td, span, div')]
                 .filter(e => !e.children.length && /\d\.\d{6,}/.test(e.textContent))
                 .map(e => e.textContent)"""
    )
    assert not long_numbers, long_numbers
    shots.take(page, "base-model-page")


def dg_key(name: str):
    import dagster as dg

    return dg.AssetKey(name)
