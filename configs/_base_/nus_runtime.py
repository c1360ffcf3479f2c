# Runtime of the nuScenes-scale (GPU) configs: the shared runtime, plus the
# numeric settings that make their CUDA training step fast.
_base_ = ['./default_runtime.py']

env_cfg = dict(
    # The input shapes are fixed (6 cameras at one size, one BEV grid), so
    # cuDNN's one-time search for the fastest convolution algorithms pays off
    # from the second step.
    cudnn_benchmark=True,
    # float32 matrix products on TF32 tensor cores, as PyTorch already runs
    # float32 convolutions (torch.backends.cudnn.allow_tf32). H100, batch 4,
    # fp32: 0.41 s per train_step against 0.57 s with 'highest' (plain
    # float32, `--cfg-options env_cfg.float32_matmul_precision=highest`);
    # docs/models.md. Under --amp most matmuls run in float16 anyway; a device
    # without such kernels (most CPUs) computes as with 'highest'.
    float32_matmul_precision='high')
