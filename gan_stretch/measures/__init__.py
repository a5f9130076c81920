"""Quality measures: distances to a reference (log-mel, attacks, smear, ...) and the two-sample
naturalness test for music without a reference."""
