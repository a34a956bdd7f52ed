"""The zoo table's counts, against the figures the official releases publish."""
import pytest

from vision_mamba.bench.models import count_model, to_markdown


@pytest.mark.parametrize("name,params_m,gflops", [
    ("vmamba_tiny_s1l8", 30.25, 4.9),     # VMamba README: 30M, 4.9G
    ("mambaout_tiny", 26.55, 4.5),        # timm's MambaOut-T; paper: 27M, 4.5G
])
def test_counts_match_published(name, params_m, gflops):
    row = count_model(name)
    assert row["params"] / 1e6 == pytest.approx(params_m, rel=0.01)
    assert row["gflops"] == pytest.approx(gflops, rel=0.02)
    assert name in to_markdown([dict(family="x", **row)])


def test_scan_flops_are_counted_for_ssm_models_only():
    assert count_model("vim_tiny_patch16_224")["scan_gflops"] > 0
    assert count_model("vim_tiny_gcnn_patch16_224")["scan_gflops"] == 0
