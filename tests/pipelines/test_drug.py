"""Drug-screening sidecar: published rules on known drugs, PAINS examples, per-row errors,
deterministic ranking, the shipped model, FHIR output and the training smoke run."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from fhir.resources.observation import Observation
from rdkit import Chem

from pipelines import registry
from pipelines.base import PipelineError, SidecarResult
from pipelines.drug import screen, train
from pipelines.drug.chem import (
    AlertFilter,
    Standardiser,
    compute_descriptors,
    lipinski,
    veber,
)
from pipelines.drug.datasets import ACTIVITY_SOURCE, fingerprint_smiles, load_activity_data
from pipelines.drug.make_library import make_library, write_library
from pipelines.drug.model import DrugModel, nearest_neighbour_similarity
from pipelines.drug.pipeline import DrugScreeningPipeline
from pipelines.drug.train import regression_metrics

DATA = Path(__file__).parents[1] / "data" / "drug"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


@pytest.fixture(scope="module")
def pipeline() -> DrugScreeningPipeline:
    return DrugScreeningPipeline()


@pytest.fixture(scope="module")
def known(pipeline: DrugScreeningPipeline) -> SidecarResult:
    return pipeline.run(DATA / "known.smi", top=100)


def _rows(result: SidecarResult) -> dict[str, dict]:
    return {row["id"]: row for row in result.data["top"]}


def _mol(smiles: str) -> Chem.Mol:
    return Standardiser()(Chem.MolFromSmiles(smiles))


def test_registered() -> None:
    assert registry.get("drug") is DrugScreeningPipeline


def test_lipinski_as_published() -> None:
    aspirin = lipinski(compute_descriptors(_mol(ASPIRIN)))
    assert aspirin.passed and aspirin.violations == ()
    cyclosporine = next(
        line.split()[0] for line in (DATA / "known.smi").read_text().splitlines() if line.endswith(" cyclosporine")
    )
    result = lipinski(compute_descriptors(_mol(cyclosporine)))
    assert not result.passed
    assert len(result.violations) >= 2
    assert any(v.startswith("MW") for v in result.violations)
    assert any(v.startswith("HBA") for v in result.violations)


def test_one_lipinski_violation_still_passes() -> None:
    # The sulfonamide series member has MW > 500 only.
    d = compute_descriptors(_mol("O=S(=O)(Nc1ncns1)c1cc(Cl)c(Oc2ccc(OC(F)F)cc2C2CCNCC2)cc1F"))
    result = lipinski(d)
    assert d.mw > 500 and len(result.violations) == 1 and result.passed


def test_veber() -> None:
    assert veber(compute_descriptors(_mol(ASPIRIN))).passed
    long_chain = veber(compute_descriptors(_mol("CCCCCCCCCCCCCCCC(=O)O")))
    assert not long_chain.passed and "rotatable bonds" in long_chain.violations[0]


@pytest.mark.parametrize(
    ("smiles", "alert"),
    [
        ("O=C1NC(=S)SC1=Cc1ccccc1", "ene_rhod_A(235)"),
        ("Oc1ccc(CCN)cc1O", "catechol_A(92)"),
        ("O=C1C=CC(=O)C=C1", "quinone_A(370)"),
    ],
)
def test_pains_examples_flagged(smiles: str, alert: str) -> None:
    pains, _ = AlertFilter()(_mol(smiles))
    assert alert in pains


def test_aspirin_has_no_pains_but_a_brenk_alert() -> None:
    pains, brenk = AlertFilter()(_mol(ASPIRIN))
    assert pains == () and "phenol_ester" in brenk


def test_screen_verdicts_and_reasons(known: SidecarResult) -> None:
    rows = _rows(known)
    assert rows["aspirin"]["verdict"] == "pass with alerts"
    assert "Lipinski pass (0 violations)" in rows["aspirin"]["reasons"]
    assert rows["ibuprofen"]["verdict"] == "pass"
    assert rows["cyclosporine"]["verdict"] == "fail"
    assert rows["cyclosporine"]["lipinski_violations"] >= 2
    assert any(r.startswith("Lipinski fail") for r in rows["cyclosporine"]["reasons"])
    assert rows["benzylidene_rhodanine"]["verdict"] == "fail"
    assert "PAINS: ene_rhod_A(235)" in rows["benzylidene_rhodanine"]["reasons"]


def test_salt_is_stripped_and_neutralised(known: SidecarResult) -> None:
    rows = _rows(known)
    assert rows["ibuprofen_sodium"]["smiles"] == rows["ibuprofen"]["smiles"]


def test_invalid_rows_reported_not_fatal(known: SidecarResult) -> None:
    rows = _rows(known)
    assert known.data["counts"]["total"] == 12
    assert known.data["counts"]["invalid"] == 3
    assert rows["unclosed_ring"]["status"] == "invalid: SMILES syntax error"
    assert rows["pentavalent_nitrogen"]["status"].startswith("invalid: Explicit valence")
    assert rows["bad_aromatic"]["status"].startswith("invalid: Can't kekulize")
    assert [r["verdict"] for r in known.data["top"][-3:]] == ["invalid"] * 3


def test_ranking_is_deterministic(pipeline: DrugScreeningPipeline, known: SidecarResult) -> None:
    again = pipeline.run(DATA / "known.smi", top=100)
    assert [(r["id"], r["score"]) for r in again.data["top"]] == [(r["id"], r["score"]) for r in known.data["top"]]
    assert [r["rank"] for r in known.data["top"]] == list(range(1, 13))
    tiers = ["pass", "pass with alerts", "fail", "invalid"]
    order = [tiers.index(r["verdict"]) for r in known.data["top"]]
    assert order == sorted(order)


def test_in_domain_series_member_scores_activity(known: SidecarResult) -> None:
    row = _rows(known)["sulfonamide_series"]
    assert row["in_domain"] is True
    assert 4.0 < row["predicted_pic50"] < 10.0
    assert _rows(known)["aspirin"]["in_domain"] is False


def test_csv_and_sdf_inputs(pipeline: DrugScreeningPipeline, tmp_path: Path) -> None:
    table = _rows(pipeline.run(DATA / "library.csv", output_dir=tmp_path))
    assert set(table) == {"aspirin", "caffeine", "rhodanine", "row4", "broken"}
    assert table["broken"]["status"] == "invalid: SMILES syntax error"
    with open(tmp_path / "ranked.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [r["id"] for r in written] == [r["id"] for r in table.values()]

    sdf = _rows(pipeline.run(DATA / "small.sdf"))
    assert sdf["pentavalent_carbon"]["status"].startswith("invalid: Explicit valence")
    assert sdf["metformin_hcl"]["smiles"] == "CN(C)C(=N)NC(=N)N"


def test_result_shape_and_fhir(pipeline: DrugScreeningPipeline) -> None:
    result = pipeline.run(DATA / "library.csv", patient_id="p1", top=2)
    assert result.pipeline == "drug" and len(result.data["top"]) == 2
    assert result.data["ranked_csv"] is None
    assert {i.name.value for i in result.report_items} >= {"DRUG-TOTAL", "DRUG-INVALID", "DRUG-CANDIDATE"}
    assert all(len(i.name.value) <= 16 for i in result.report_items)  # DICOM SH code value
    (resource,) = result.fhir
    obs = Observation.model_validate(resource)
    assert obs.status == "final" and obs.subject.reference == "Patient/p1"
    counts = {c.code.coding[0].code: c.valueInteger for c in obs.component if c.valueInteger is not None}
    assert counts["DRUG-TOTAL"] == 5 and counts["DRUG-INVALID"] == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("lib.xyz", "CCO", "unsupported library format"),
        ("lib.csv", "id,name\n1,ethanol\n", "no SMILES column"),
        ("lib.smi", "# only a comment\n", "no molecules"),
    ],
)
def test_bad_inputs_raise(
    pipeline: DrugScreeningPipeline, tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PipelineError, match=message):
        pipeline.run(path)


def test_missing_file_and_unknown_parameter(pipeline: DrugScreeningPipeline, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        pipeline.run(tmp_path / "absent.smi")
    with pytest.raises(PipelineError, match="unknown parameters"):
        pipeline.run(DATA / "library.csv", colour="blue")


def test_shipped_model_loads_and_matches_its_card() -> None:
    model = DrugModel.load()
    card = model.metadata["metrics"]["activity_test"]
    smiles, pic50, ids = load_activity_data()
    test_ids = set(model.metadata["activity_test_ids"])
    pick = [i for i, mol_id in enumerate(ids) if mol_id in test_ids]
    fps, keep = fingerprint_smiles([smiles[i] for i in pick], Standardiser())
    metrics = regression_metrics(pic50[pick][keep], model.score(fps).pic50, model.target_mean)
    assert metrics["n"] == card["n"]
    assert metrics["r2"] == pytest.approx(card["r2"], abs=1e-3)
    assert metrics["rmse"] < card["baseline_rmse_train_mean"]
    assert len(model.checksum) == 64


def test_workers_give_the_same_ranking(pipeline: DrugScreeningPipeline, tmp_path: Path) -> None:
    library = tmp_path / "lib.smi"
    write_library(make_library(size=700, invalid=3), library)  # two chunks: the second goes to the pool
    single = pipeline.run(library, top=1000, workers=1)
    pooled = pipeline.run(library, top=1000, workers=2)
    assert single.data["counts"]["total"] == 703
    assert [(r["id"], r["score"], r["verdict"]) for r in pooled.data["top"]] == [
        (r["id"], r["score"], r["verdict"]) for r in single.data["top"]
    ]


def _lose_the_worker(records: list) -> None:
    """Run in a pool process: dies as a crashed worker would."""
    os._exit(1)


def test_a_pool_that_loses_its_workers_still_screens_everything(
    pipeline: DrugScreeningPipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    library = tmp_path / "lib.smi"
    write_library(make_library(size=1500, invalid=3), library)  # three chunks: two go to the pool
    single = pipeline.run(library, top=2000, workers=1)
    monkeypatch.setattr(screen, "run_worker", _lose_the_worker)
    fallen_back = pipeline.run(library, top=2000, workers=2)
    assert "process pool failed" in caplog.text
    assert fallen_back.data["counts"] == single.data["counts"]
    assert [r["id"] for r in fallen_back.data["top"]] == [r["id"] for r in single.data["top"]]


def test_make_library_is_deterministic_with_analogues() -> None:
    first = make_library(size=6400, seed=3)
    assert first == make_library(size=6400, seed=3)
    assert len({s for _, s in first}) == 6400
    assert any(mol_id.startswith("ENU") for mol_id, _ in first)


def test_smoke_training(tmp_path: Path) -> None:
    out = tmp_path / "smoke.pt"
    assert train.main(["--smoke", "--out", str(out)]) == 0
    model = DrugModel.load(out)
    scores = model.score(np.zeros((2, 2048), dtype=np.uint8))
    assert np.isfinite(scores.pic50).all() and scores.latent.shape == (2, 32)
    assert model.activity == ACTIVITY_SOURCE  # what its pIC50 is of travels with the weights
    nn_sim = nearest_neighbour_similarity(model.domain_fps)  # and a domain drawn from its own training set
    assert model.domain_threshold == pytest.approx(float(np.quantile(nn_sim, train.DOMAIN_QUANTILE)))
