"""The ontology: any release from v0.1.0 on, parsed into one normalised model (concepts, relations, eligibility, logic)."""
