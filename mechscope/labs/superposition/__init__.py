"""Superposition lab: toy models of superposition, near-orthogonal vectors, the MLP as a fact memory.

Reproduces Elhage et al. 2022, "Toy Models of Superposition", and checks 3Blue1Brown's "How might LLMs
store facts" with honest numbers. Modules (import what you need; importing this package loads nothing):

    config       ToyConfig / OrthoConfig (the CLI flags, the --json echo, the Python API)
    toy          x' = ReLU(WᵀWx + b), many instances as one batched model, trained with Adam
    geometry     feature norms, dimensionality D_i, D* = m / ‖W‖²_F, adjacent angles in 2-D
    sweep        sparsity sweep (D_i against sparsity) and the phase diagram, each one batch
    orthogonal   random and optimised near-perpendicular vector sets, chunked pairwise statistics
    capacity     how many vectors fit within ±ε of 90° against dimension, Welch and JL bounds
    memory       the hand-built AND neuron (Michael Jordan → basketball) and a plain Gemma probe
    figures      PNGs
    tour         the `mechscope tour` section

CLI: ``mechscope toy superposition | orthogonal | memory``; parameter counting lives in
:mod:`mechscope.model.params` (``mechscope info --params``); docs: docs/superposition.md.
"""
