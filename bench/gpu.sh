#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md, in one run of at most 10 minutes on one H100/H200:
#   1. corpus-loss MFU of a Pythia-1.4B-shaped model in bfloat16 (bench/corpus_loss.py, 2048-token windows);
#   2. the multiple-choice scorer bench on CUDA in bfloat16 (bench/mc_scoring.py: HFLM vs hf-shared);
#   3. one random Pythia-160M-shaped cell end to end (python evaluate.py, batch_size=auto), hf-shared and hf.
# Offline: random weights, the demo tasks and tokenizer; nothing is downloaded.
#
#   bash bench/gpu.sh          # on the GPU machine, from the repository root or anywhere
#   bash bench/gpu.sh --dry    # the same steps at toy sizes on CPU, to check the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export LLM_LINE_CACHE="$WORK/cache"

if [[ "${1:-}" == "--dry" ]]; then
    DEVICE=cpu DTYPE=float32 SIZES=160m TOKENS="--tokens 2048 --baseline off" SCALE=0.1 BATCH=8 LIMIT=task.limit=4
else
    DEVICE=cuda DTYPE=bfloat16 SIZES=1.4b TOKENS="--tokens 4000000 --baseline on --baseline-tokens 100000" SCALE=20 BATCH=64 LIMIT=
    "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
fi

echo "== 1. corpus loss, Pythia-$SIZES shape, $DEVICE $DTYPE"
timeout 240 "$PYTHON" bench/corpus_loss.py --device "$DEVICE" --dtype "$DTYPE" --sizes "$SIZES" $TOKENS

echo "== 2. multiple-choice scoring, Pythia-160M shape, $DEVICE $DTYPE"
timeout 180 "$PYTHON" bench/mc_scoring.py --device "$DEVICE" --dtype "$DTYPE" --batch-size "$BATCH" --scale "$SCALE"

echo "== 3. one random Pythia-160M-shaped cell end to end, batch_size=auto"
"$PYTHON" - "$WORK/pythia-160m-random" <<'EOF'
import sys

import torch
import transformers

sys.path[:0] = [".", "bench"]
from mc_scoring import PYTHIA_160M, VOCAB


from llm_line.evaluation import demo

torch.manual_seed(0)
config = transformers.GPTNeoXConfig(vocab_size=VOCAB, rotary_pct=0.25, max_position_embeddings=2048, **PYTHIA_160M)
transformers.GPTNeoXForCausalLM(config).save_pretrained(sys.argv[1])
demo._train_tokenizer(demo.training_texts()).save_pretrained(sys.argv[1])
EOF
for backend in hf-shared hf; do
    start=$(date +%s.%N)
    timeout 120 "$PYTHON" evaluate.py model=hf model.name=random-pythia-160m model.pretrained="$WORK/pythia-160m-random" \
        model.device="$DEVICE" model.dtype="$DTYPE" model.batch_size=auto model.backend="$backend" task=demo shots=2 $LIMIT \
        results_dir="$WORK/results-$backend" > "$WORK/cell-$backend.log" 2>&1 || { tail -20 "$WORK/cell-$backend.log"; exit 1; }
    "$PYTHON" - "$WORK/results-$backend" "$start" <<'EOF'
import json
import pathlib
import sys
import time

(path,) = pathlib.Path(sys.argv[1]).rglob("result.json")
result = json.loads(path.read_text())
demo = result["metrics"]["demo"]
print(
    f"{result['model']['backend']:<10} batch_size {result['model']['batch_size']}, {result['n_docs']} docs, "
    f"acc {demo['acc']:.4f}, loss {demo['loss']:.6f}, cell {result['run']['wall_s']:.1f} s, "
    f"process {time.time() - float(sys.argv[2]):.1f} s"
)
EOF
done
