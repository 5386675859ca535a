"""What the drug screen's activity number is, and where it applies: the pIC50 is named after
the training data's ChEMBL set in the CSV, the JSON, the SR items and the FHIR Observation;
the applicability-domain threshold comes from the training set's own nearest-neighbour
similarities; a molecule outside it gets no pIC50 and never outranks an in-domain molecule
of its tier."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from fhir.resources.observation import Observation
from rdkit import RDConfig

from pipelines.base import PipelineError, SidecarResult
from pipelines.drug.datasets import ACTIVITY_SOURCE
from pipelines.drug.model import DEFAULT_MODEL_PATH, nearest_neighbour_similarity
from pipelines.drug.pipeline import DrugScreeningPipeline
from pipelines.drug.train import DOMAIN_QUANTILE

DATA = Path(__file__).parents[1] / "data" / "drug"


@pytest.fixture(scope="module")
def pipeline() -> DrugScreeningPipeline:
    return DrugScreeningPipeline()


@pytest.fixture(scope="module")
def screened(pipeline: DrugScreeningPipeline, tmp_path_factory: pytest.TempPathFactory) -> SidecarResult:
    return pipeline.run(DATA / "domain.smi", top=10, output_dir=tmp_path_factory.mktemp("screen"))


def _rows(result: SidecarResult) -> dict[str, dict]:
    return {row["id"]: row for row in result.data["top"]}


def test_the_activity_is_named_after_the_training_data(pipeline: DrugScreeningPipeline) -> None:
    activity = pipeline.model.activity
    assert activity == ACTIVITY_SOURCE and activity.endpoint == "pIC50"
    # the ChEMBL set the RDKit files the model was trained on are named after
    assert (Path(RDConfig.RDContribDir) / "FreeWilson" / "data" / f"{activity.chembl_id}_act.csv").exists()
    assert activity.target is None and "target not stated" in activity.label  # the data do not name it


def test_the_ranked_csv_header_names_the_assay(screened: SidecarResult, pipeline: DrugScreeningPipeline) -> None:
    with open(screened.data["ranked_csv"], newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {row["id"]: row for row in reader}
    column = f"predicted_pic50_{pipeline.model.activity.chembl_id}"
    assert column in reader.fieldnames and "predicted_pic50" not in reader.fieldnames
    assert float(rows["series_weak"][column]) == _rows(screened)["series_weak"]["predicted_pic50"]
    assert rows["ibuprofen"][column] == "" and rows["ibuprofen"]["in_domain"] == "False"


def test_sr_items_and_fhir_name_the_assay(screened: SidecarResult, pipeline: DrugScreeningPipeline) -> None:
    activity = pipeline.model.activity
    assert screened.data["activity_model"]["chembl_id"] == activity.chembl_id
    assert screened.data["activity_model"]["csv_column"] == activity.column
    (item,) = [i for i in screened.report_items if i.name.value == "DRUG-ACTIVITY"]
    assert activity.label in item.text and f"{pipeline.model.domain_threshold:.2f}" in item.text
    texts = {i.text.split(":")[0].split()[-1]: i.text for i in screened.report_items if i.name.value == "DRUG-CANDIDATE"}
    assert f"predicted pIC50 {_rows(screened)['series_weak']['predicted_pic50']:.2f} (ChEMBL {activity.chembl_id})" in (
        texts["series_weak"])  # fmt: skip
    assert "outside the activity model's domain, no pIC50" in texts["ibuprofen"]
    obs = Observation.model_validate(screened.fhir[0])
    by_code = {c.code.coding[0].code: c for c in obs.component}
    assert by_code["DRUG-ACTIVITY"].valueString == item.text
    assert by_code["DRUG-IN-DOMAIN"].valueInteger == screened.data["counts"]["in_domain"] == 1
    assert activity.label in obs.method.text


def test_the_domain_threshold_is_drawn_from_the_training_set(pipeline: DrugScreeningPipeline) -> None:
    model = pipeline.model
    nn_sim = nearest_neighbour_similarity(model.domain_fps)
    assert model.domain_threshold == pytest.approx(float(np.quantile(nn_sim, DOMAIN_QUANTILE)))
    assert model.metadata["applicability_domain"]["threshold"] == pytest.approx(model.domain_threshold, abs=1e-4)
    assert np.mean(nn_sim >= model.domain_threshold) == pytest.approx(1 - DOMAIN_QUANTILE, abs=0.01)


def test_out_of_domain_rows_get_no_pic50(screened: SidecarResult, pipeline: DrugScreeningPipeline) -> None:
    rows = _rows(screened)
    threshold = pipeline.model.domain_threshold
    sulfa = rows["sulfathiazole"]
    assert 0.4 <= sulfa["domain_similarity"] < threshold  # in domain at the old fixed 0.4
    for name in ("sulfathiazole", "ibuprofen"):
        assert rows[name]["in_domain"] is False and rows[name]["predicted_pic50"] is None
        assert any("no pIC50 predicted" in r for r in rows[name]["reasons"])
    assert rows["series_weak"]["in_domain"] is True and rows["series_weak"]["domain_similarity"] >= threshold
    assert isinstance(rows["series_weak"]["predicted_pic50"], float)


def test_out_of_domain_never_outranks_in_domain_in_a_tier(screened: SidecarResult) -> None:
    rows = _rows(screened)
    weak, ibuprofen = rows["series_weak"], rows["ibuprofen"]
    assert weak["verdict"] == ibuprofen["verdict"] == "pass"
    assert weak["score"] < ibuprofen["score"]  # ibuprofen's reference similarity alone outscores it
    assert weak["rank"] < ibuprofen["rank"]



@pytest.mark.parametrize("missing", ["activity", "domain_threshold"])
def test_a_model_file_that_does_not_say_what_it_predicts_is_refused(tmp_path: Path, missing: str) -> None:
    payload = torch.load(DEFAULT_MODEL_PATH, map_location="cpu", weights_only=True)
    del payload[missing]
    path = tmp_path / "old.pt"
    torch.save(payload, path)
    with pytest.raises(PipelineError, match=f"cannot load drug model old.pt: '{missing}'"):
        DrugScreeningPipeline(path).run(DATA / "domain.smi")
