"""Configuration shipped inside the package (the demo's embedded defaults)."""
