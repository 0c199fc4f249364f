"""Quality: the expectation vocabulary, the Great Expectations runner and the raw, staging and audience gates."""
