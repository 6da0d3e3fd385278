"""The data command-line tools: verify a feature file, benchmark the input pipeline."""
