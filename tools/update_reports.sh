#!/usr/bin/env bash
# Re-measure everything the README and the model card show, from the weights in weights/:
# the SR and denoising benchmark reports (quality on every test set present, runtime and memory on the CPU
# with the fastest exact backend named), the CPU speedup tables at 1 and 2 threads (each with its control row), then the model card and
# the README's results section. Run it on a quiet machine: the timings are only as good as the machine's calm.
#   bash tools/update_reports.sh            DATA=path/to/datasets (default datasets) PY=interpreter
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-datasets}
set -e
$PY -m restore_dhp.benchmark --task sr --data-root "$DATA" --sets Set5 Set14 B100 Urban100 --threads 1 \
  --repeats 3 --warmup 1 --timing-max-images 3 --backends fused compiled onnxruntime --out reports/sr
$PY -m restore_dhp.benchmark --task denoise --data-root "$DATA" --sets BSD68 Set12 --threads 1 \
  --repeats 3 --warmup 1 --timing-max-images 3 --backends fused compiled onnxruntime --out reports/denoise
# the catalogue's further network (EDSR, pruned by tracing it, CPU budget): its report beside the main ones
$PY -m restore_dhp.benchmark --task sr --data-root "$DATA" --sets Set5 Set14 B100 Urban100 --threads 1 \
  --repeats 3 --warmup 1 --timing-max-images 3 --backends fused --weights weights/edsr_x4_*.safetensors \
  --out reports/edsr_x4
# --settle: rounds are added, 5 at a time, until each table's control row reads 1.00 +- 0.03 (at most 60)
$PY -m restore_dhp.speedup --weights weights/srresnet_x4_*.safetensors --threads 1 2 --repeats 5 --warmup 2 \
  --settle 60 --out reports/sr/speedup_cpu.txt
$PY -m restore_dhp.speedup --weights weights/dncnn_s70_*.safetensors --threads 1 2 --repeats 5 --warmup 2 \
  --settle 60 --out reports/denoise/speedup_cpu.txt
$PY -m restore_dhp.speedup --weights weights/edsr_x4_*.safetensors --backends fused --threads 1 --repeats 5 \
  --warmup 2 --settle 20 --out reports/edsr_x4/speedup_cpu.txt
$PY -m tools.write_model_card
$PY -m tools.update_readme_results
