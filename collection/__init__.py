"""Ingestion and curation: sources, probing, dedup, splits, the HF dataset, the card, publishing, rain synthesis."""
