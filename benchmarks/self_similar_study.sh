#!/usr/bin/env bash
# Issue 26, item 4: does a self-similar fit help an isotropic scan? For each test head (ground truth HR):
# LR = degrade(HR, 2) is the "isotropic scan"; the bundled ×2 MRI network is fine-tuned for MINUTES on pairs made
# from that scan alone (degrade(LR, 2) → LR, volumenet-train --init-from, validated on the same scan's pairs),
# then both networks upscale LR and are compared with HR by `volumenet evaluate` (the one protocol).
#   benchmarks/self_similar_study.sh OUT MINUTES HEAD.nii.gz [HEAD.nii.gz ...]
set -euo pipefail
out=$1; minutes=$2; shift 2
bundled=napari_volumenet/weights/volumenet-d9c32-mri-x2.pt
mkdir -p "$out"
for head in "$@"; do
  name=$(basename "$head" .nii.gz)
  mkdir -p "$out/$name/scan"
  python - "$head" "$out/$name/scan/lr.nii.gz" <<'PY'
import sys
import nibabel as nib
import numpy as np
from napari_volumenet.ops.degrade import crop_to_multiple, degrade
hr = nib.load(sys.argv[1])
lr = degrade(crop_to_multiple(np.asarray(hr.dataobj, dtype=np.float32), 2), 2)
affine = hr.affine.copy()
affine[:3, :3] *= 2  # the geometry does not enter training
nib.save(nib.Nifti1Image(lr.astype(np.float32), affine), sys.argv[2])
PY
  # self-validation, as `volumenet fit` does: the same scan's pairs (a copy: the trainer refuses one file in both)
  mkdir -p "$out/$name/self" && cp "$out/$name/scan/lr.nii.gz" "$out/$name/self/lr_self.nii.gz"
  volumenet-train --data "$out/$name/scan" --val "$out/$name/self" --init-from "$bundled" --model volumenet \
    --depth 9 --channels 32 --modality mri --patch 12 --margin 6 --batch 4 --lr 1e-4 --edge-cut 0.15 \
    --steps-per-epoch 25 --max-minutes "$minutes" --seed 1 --no-tensorboard --quiet --out "$out/$name/run"
  mkdir -p "$out/$name/truth" && ln -sf "$(realpath "$head")" "$out/$name/truth/"
  volumenet evaluate "$out/$name/truth" --models "volumenet-d9c32-mri-x2,$out/$name/run/best.pt" \
    --json "$out/$name/evaluate.json" 2> /dev/null | tail -4
done
