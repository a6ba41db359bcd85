"""Making the model fast: samplers, distillation, quantization, device choice and batching.

- ``sampler``: ``EulerFlowSampler`` (diffusers-style ``set_timesteps`` / ``step``) and ``sample``.
- ``distill``: teacher (32+ steps) -> 1-2 step student, by regression on teacher ODE couplings.
- ``quantize``: int8 dynamic-activation / int8-weight linears with torchao (CPU).
- ``device``: device and dtype choice, channels_last, ``torch.compile`` (CUDA graphs on GPU).
- ``scheduler``: ``FrameScheduler``, one batched forward pass per tick, earliest deadline first.
- ``metrics`` / ``benchmark``: mouth PSNR/SSIM and ``bench_model`` (ms per frame, quality).
"""
