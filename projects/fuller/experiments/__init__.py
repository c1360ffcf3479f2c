"""Experiments around the Runner: the demo and ablation's supervision of
tool runs (:mod:`.processes`) and the modality-reliance measurements
(:mod:`.reliance`)."""
