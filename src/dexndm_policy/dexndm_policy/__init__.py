"""Observation contract, ONNX runtime and the rotation policy node (generalist + residual)."""
