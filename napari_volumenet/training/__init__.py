"""What every optimisation in the project shares: the step (:mod:`.step`), the learning-rate schedule
(:mod:`.schedule`) and the least-squares start of a network's head (:mod:`.linear_head`).

``volumenet-train`` (``src_training``) and the fit to one scan (:mod:`napari_volumenet.fit`) both build on them.
"""
