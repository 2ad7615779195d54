"""TAVR lumped-parameter haemodynamics model."""
