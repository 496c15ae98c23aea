"""The generated blocks of README.md and docs/*.md: every figure a reader sees, rendered from the file that holds it."""
