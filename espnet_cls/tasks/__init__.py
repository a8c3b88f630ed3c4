"""Task definitions (config schema and model builders). ``cls``: audio classification."""
