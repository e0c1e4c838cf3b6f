"""Grokking lab: train, reverse-engineer and watch a one-layer transformer learn modular addition.

Reproduces Nanda et al. 2023, "Progress measures for grokking via mechanistic interpretability".
Modules (import what you need; importing this package loads nothing heavy):

    config      GrokConfig / GrokModelConfig, the paper and fast recipes
    data        all pairs, answers, seeded train/test split
    model       the one-layer transformer as plain tensors (seed axis), reference forward
    fast        the exact training fast path (tabulated attention, sparse mixing, seed chunks)
    optim       AdamW + warm-up + Grokfast-EMA with explicit, checkpointable state
    rundir      run directory layout, atomic safetensors/JSON files, ``Run`` reader
    train       full-batch training with checkpoints and bit-identical resume
    fourier     Fourier basis, spectra, neuron frequencies and FVE, key frequencies, Gini
    measures    progress measures (restricted/excluded loss, Gini, weight norm) per checkpoint
    phases      memorisation / circuit formation / cleanup boundaries
    probe       sparse (Lasso) probe of the circle
    clock       a hand-built model that runs the clock algorithm
    analyze     everything above for one run; the stable --json summary
    drawing     the canvas, atomic save and phase shading all pictures share
    figures, figures_neurons, animation   PNGs and the GIF
    tour        the `mechscope tour` section

CLI: ``mechscope grok train | analyze | figures``; docs: docs/grokking.md.
"""
