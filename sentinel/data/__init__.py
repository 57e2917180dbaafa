"""Market-depth data: schema, strict validation, canonical I/O, synthetic scenarios."""
