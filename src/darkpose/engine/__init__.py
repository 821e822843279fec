"""The engine: datasets from a config, the test loop, the training loop."""
