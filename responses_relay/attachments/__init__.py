"""Photos and PDFs in a user message: `formats.py`, what bytes are (magic numbers, an image's
size from its header, a whole file's structure); `parts.py`, the content parts that carry them,
checked before anything goes upstream."""
