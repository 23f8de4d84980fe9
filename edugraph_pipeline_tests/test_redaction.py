from edugraph_pipeline.redaction import redact, redact_url


def test_redact_masks_given_values_bearer_hub_tokens_and_url_credentials():
    text = "Bearer abc.def token hf_abcdefghijklmnopqrstu url https://u:pw@host/x value SECRETVAL short ab"
    assert redact(text, ["SECRETVAL", "ab", None]) == (
        "Bearer *** token *** url https://***@host/x value *** short ab"
    )


def test_redact_url_drops_user_information_only():
    assert redact_url("https://user:s3cret@github.com/org/repo.git") == "https://***@github.com/org/repo.git"
    assert redact_url("https://ghp_token@example.com:8443/r.git") == "https://***@example.com:8443/r.git"
    assert redact_url("/local/path") == "/local/path"
