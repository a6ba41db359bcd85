"""Making the model fast: samplers, distillation, quantization, device choice and batching."""
