"""Drug-candidate screening sidecar: read a SMILES/SDF library, standardise, apply published
drug-likeness rules and structural-alert filters, score with a fingerprint autoencoder and an
activity regressor, and rank.

Flow: ``library`` (read) → ``chem`` (standardise, descriptors, rules, alerts, fingerprints)
→ ``model`` (autoencoder novelty/similarity, activity) → ``screen`` (score, rank, write)
→ ``pipeline`` (SidecarResult, FHIR). Research use only; not for clinical use.
"""
