"""Training of the super-resolution networks (the paper's protocol, SPEC §3), built on the library.

- :mod:`src_training.train`: ``volumenet-train`` (= ``python -m src_training.train``), in small parts
  (``cli``, ``config``, ``run_setup``, ``loop``, ``step``, ``schedule``, ``validator``, ``run_folder``...);
- :mod:`src_training.splits`, :mod:`src_training.bundle`: held-out subjects, bundling weights.

Evaluation (``volumenet evaluate``) lives in the library, :mod:`napari_volumenet.evaluation`.
"""
