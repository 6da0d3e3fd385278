"""Many runs: the multi-seed protocol, its summary, the comparison of several."""
