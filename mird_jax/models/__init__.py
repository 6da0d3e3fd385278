"""Flax modules only: the MIRD and MIB families and their layers. factory.py is the one module
that turns a config into a model."""
