"""Circuit and prover: EZKL settings, build, proofs, verification, manifest."""
