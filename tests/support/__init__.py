"""Test tooling: the browser driver and the chaos runner (not part of the product)."""
