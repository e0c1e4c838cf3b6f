#!/usr/bin/env bash
# Benchmark environments for peer tools (never product dependencies), one venv each under
# benchmarks/envs/<name>/ (git-ignored):
#
#   tl      TransformerLens 4.3.0 (TransformerBridge)
#   nnsight nnsight 0.8.1
#   sae       SAELens 6.x (pins transformer-lens < 4, hence its own venv)
#   sparsify  EleutherAI sparsify 1.3.3 (PyPI: eai-sparsify; TopK SAE trainer)
#
# Every venv gets torch 2.13.0 first (the CPU wheel; an unpinned torch pulls a multi-GB CUDA build)
# and the product's own pins (constraints.txt: transformers 5.23.0, tokenizers, safetensors, ...), so
# peers run the same Hugging Face modeling code as mechscope.
#
# Usage: bash benchmarks/envs/make_envs.sh [tl] [nnsight] [sae] [sparsify]     (default: all four)
# Idempotent: an env whose stamp file (.complete) matches its spec is skipped; FORCE=1 rebuilds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH="torch==2.13.0"

# name -> the peer's packages (pip requirement strings)
declare -A PEERS=(
  [tl]="transformer-lens==4.3.0"
  [nnsight]="nnsight==0.8.1"
  [sae]="sae-lens>=6,<7"
  [sparsify]="eai-sparsify==1.3.3"
)
# import check run after install: proves the entry points the benchmarks use exist
declare -A CHECKS=(
  [tl]="from transformer_lens.model_bridge import TransformerBridge; from importlib.metadata import version; print('transformer-lens', version('transformer-lens'))"
  [nnsight]="import nnsight; from nnsight.modeling.transformers import TransformersModel; print('nnsight', nnsight.__version__)"
  [sae]="import sae_lens, transformer_lens; print('sae_lens', sae_lens.__version__)"
  [sparsify]="from sparsify import SaeConfig, Sae, Trainer, TrainConfig; from importlib.metadata import version; print('eai-sparsify', version('eai-sparsify'))"
)

build() {
  local name="$1" spec="${PEERS[$1]}" dir="$HERE/$1"
  local stamp="$dir/.complete" want="$TORCH | $spec | $(sha1sum "$ROOT/constraints.txt" | cut -c1-12)"
  if [[ "${FORCE:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "[$name] complete, skipping ($dir)"
    return
  fi
  echo "[$name] building $dir: $spec"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  pip() {  # quiet, minus the local-index "is ignored" noise
    "$dir/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2)
  }
  pip install -q --upgrade pip
  pip install -q "$TORCH"
  # Constraints: torch stays 2.13.0; transformers & co. stay at the product's versions.
  local cons="$dir/constraints.txt"
  { echo "$TORCH"; grep -v -E '^\s*(#|$)' "$ROOT/constraints.txt"; } >"$cons"
  pip install -q -c "$cons" $spec psutil
  "$dir/bin/python" -c "import torch, transformers; assert torch.__version__.startswith('2.13.0'), torch.__version__; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  HF_HUB_OFFLINE=1 "$dir/bin/python" -c "${CHECKS[$name]}"
  pip freeze >"$dir/freeze.txt"
  echo "$want" >"$stamp"
  echo "[$name] done"
}

names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=(tl nnsight sae sparsify)
for n in "${names[@]}"; do
  [[ -n "${PEERS[$n]:-}" ]] || { echo "unknown env '$n' (known: ${!PEERS[*]})" >&2; exit 2; }
  build "$n"
done
