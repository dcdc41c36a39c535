"""Training and evaluation of the super-resolution networks (the paper's protocol, SPEC §3).

- :mod:`src_training.train`: ``volumenet-train`` (= ``python -m src_training.train``);
- :mod:`src_training.evaluate`: degrade HR volumes, run tricubic and trained networks, and
  report RMSE / PSNR / foreground PSNR / SSIM / time / #params (``volumenet evaluate``).
"""
