"""The HTTP API: a thin front end over the application layer, mounted beside the pages (serve.py)."""
