"""Measurements that training never needs: benchmark, profile, FLOP counting, describe.
Only mird_jax/main.py imports them."""
