#!/usr/bin/env bash
# Every GPU measurement of the performance issue in one call of a GPU machine (about 6 minutes on an H100):
#   the CUDA tests; `volumenet benchmark` of VolumeNet D9C32 and ParallelNet D5C32 in fp16, bf16 and fp32
#   with the bandwidth roofline at 3 TB/s; the PSNR change of each precision on the bundled sample with the
#   bundled weights; and benchmarks/peers.py on CUDA with its 32³ → 256³ LR size sweep.
# Results go to $OUT (or ./gpu-results). Needs PyTorch with CUDA and nibabel importable (monai for peer (b));
# on a machine without internet, carry their wheels and put them on PYTHONPATH first (benchmarks/README.md).
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
vn() { python3 -m napari_volumenet "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_inference.py tests/test_roofline.py -k "cuda or roofline" 2>&1 | tail -3 \
    | tee "$out/tests.txt"
for precision in fp16 bf16 fp32; do
    vn benchmark --device cuda --precision "$precision" --models volumenet,parallelnet --repeats 5 \
        --bandwidth 3000 --json "$out/benchmark-$precision.json" -q | tee -a "$out/benchmark.txt"
done
for precision in fp32 fp16 bf16; do
    vn evaluate napari_volumenet/sample_data/mni152_t1_hr.nii.gz --device cuda --precision "$precision" -q \
        --json "$out/precision-$precision.json" | tee -a "$out/precision.txt"
done
python3 benchmarks/peers.py --device cuda --repeats 5 --json "$out/peers.json" \
    --plot "$out/peers.png" 2>&1 | tee "$out/peers.txt"
