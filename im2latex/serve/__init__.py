"""The prediction API (FastAPI) on the exported TorchScript file."""
