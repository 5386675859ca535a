"""Sidecar benchmark: genomics on a 30-sample indexed VCF, drug screening of 10,000 molecules,
risk prediction for 1,000 patient series — wall time and items/s for each.

    .venv/bin/python bench/sidecars.py [--samples 30] [--molecules 10000] [--patients 1000]

Targets (issue 6): genomics ≥ 100 samples/s over the core-gene positions of an indexed VCF;
drug ≥ 500 molecules/s for filters + fingerprints + model on 2 cores; prediction ≥ 1,000
patients/s batched. The genomics figure is reported twice: calling only (read + diplotypes +
phenotypes + recommendations) and the whole pipeline run (which also builds FHIR and SR items).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.drug.make_library import make_library, write_library  # noqa: E402
from pipelines.drug.pipeline import DrugScreeningPipeline  # noqa: E402
from pipelines.genomics.definitions import load_definitions  # noqa: E402
from pipelines.genomics.diplotype import call_gene  # noqa: E402
from pipelines.genomics.make_sample_vcf import index_vcf, random_genotypes, write_vcf  # noqa: E402
from pipelines.genomics.phenotype import interpret_sample  # noqa: E402
from pipelines.genomics.pipeline import GenomicsPipeline  # noqa: E402
from pipelines.genomics.vcf import read_calls  # noqa: E402
from pipelines.prediction.cohort import generate_cohort  # noqa: E402
from pipelines.prediction.model import RiskModel  # noqa: E402


def timed(label: str, count: int, unit: str, run) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(f"{label:34s} {count:6d} {unit:10s} {seconds:7.2f} s  {count / seconds:9.1f} {unit}/s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--molecules", type=int, default=10_000)
    parser.add_argument("--patients", type=int, default=1_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dicom-node-sidecars-"))
    try:
        genotypes, _ = random_genotypes(args.samples, seed=7)
        vcf = write_vcf(tmp / "cohort.vcf.gz", genotypes, background=50_000, seed=7)
        index_vcf(vcf)
        definitions = load_definitions()

        def call_all() -> None:  # what GenomicsPipeline.run does before building FHIR and SR items
            found = read_calls(vcf, definitions)
            for sample in found.samples:
                calls, unassessed = found.calls[sample], found.unassessed[sample]
                gene_calls = {s: call_gene(g, calls, unassessed.get(s, ())) for s, g in definitions.genes.items()}
                interpret_sample(definitions, gene_calls, unassessed)

        timed("genomics: calling only", args.samples, "samples", call_all)
        timed("genomics: whole pipeline run", args.samples, "samples", lambda: GenomicsPipeline().run(vcf))

        library = tmp / "library.csv"
        write_library(make_library(args.molecules, seed=3), library)
        pipeline = DrugScreeningPipeline()
        timed("drug: screen + rank", args.molecules, "molecules", lambda: pipeline.run(library, output_dir=tmp / "drug"))

        cohort = generate_cohort(args.patients, seed=11)
        model = RiskModel.load()
        timed("prediction: batched risk", args.patients, "patients", lambda: model.predict(cohort.patients))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
