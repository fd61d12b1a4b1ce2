"""Receiving returns: read safely, identify, lift the table, normalise, validate, annotate, ingest, watch."""
