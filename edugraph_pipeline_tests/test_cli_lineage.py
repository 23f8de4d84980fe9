"""`edugraph lineage` as the README's "Run the pipeline" block runs it: with no Hub repository set nothing is
published, so the default shows the merged model's chain instead of failing."""

import dagster as dg

from edugraph_pipeline.cli import main


def test_lineage_defaults_to_the_merged_model_when_nothing_was_published(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert main(["lineage"]) == 2
    assert "no materialization of merged_model" in capsys.readouterr().err

    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("merged_model", metadata={"ontology_version": "v0.21.0", "model_sha256": "ab12"})
        )
    assert main(["lineage"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("merged_model  run") and "ontology_version: v0.21.0" in out and "model_sha256: ab12" in out
    assert "note: no materialization of hf_publication" in err
    assert main(["lineage", "hf_publication"]) == 2  # asked for by name: no fallback
