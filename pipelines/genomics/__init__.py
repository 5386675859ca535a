"""The ``genomics`` sidecar: pharmacogenomic star-allele diplotypes, phenotypes and CPIC drug
recommendations from a VCF/BCF. Entry point: :class:`pipelines.genomics.pipeline.GenomicsPipeline`.
"""
