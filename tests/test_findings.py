import numpy as np

from fmlib.findings import Finding, attainable_holm_p, family_of, judge


def _finding(key, p, metric="absolute", p_min=1e-4):
    return Finding(key, "", metric, "", 0.1, 0.05, 0.2, 10, "", p, p_min, "")


def test_ratio_twins_form_their_own_family_and_never_dilute_the_primary_correction():
    primary = [_finding("a", 0.006), _finding("b", 0.2)]
    ratios = [_finding(f"r{i}", 0.001, "ratio") for i in range(15)]
    judged = {f.key: f for f in judge([*primary, *ratios])}
    # Holm over the two primary claims only: 0.006 * 2; with the 15 ratio rows it would be 0.006 * 17 > 0.05
    assert np.isclose(judged["a"].p_holm, 0.012) and judged["a"].verdict == "supported"
    assert np.isclose(judged["r0"].p_holm, 0.015)  # the secondary family is corrected among its own 15
    assert {f.family for f in judged.values()} == {"primary", "secondary"}
    assert judged["r3"].to_dict()["family"] == "secondary"


def test_the_attainable_p_is_computed_within_the_family():
    findings = [_finding("a", 0.5, p_min=0.04), *[_finding(f"r{i}", 0.5, "ratio") for i in range(10)]]
    assert np.isclose(attainable_holm_p(findings)[0], 0.04)  # alone in its family: 0.04 can still decide


def test_family_of_names_the_ratio_secondary():
    assert family_of("ratio") == "secondary"
    assert family_of("absolute") == family_of("real") == "primary"
