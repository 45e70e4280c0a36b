"""`inpaint bench`: seeded mask families, the method runner, and the JSON/Markdown/PNG report."""
