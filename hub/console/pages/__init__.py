"""The console's pages, one module per subject; each holds a FastAPI router mounted under /ops."""
