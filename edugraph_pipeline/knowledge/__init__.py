"""Knowledge infusion: question/answer pairs generated from one ontology release."""
