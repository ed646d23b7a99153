"""Durability probes: is an erased row really gone, or only hidden from greedy decoding?

Greedy EL_10 and MA below a threshold say a model no longer recites a row when asked greedily.
Published attacks get "unlearned" text back by other routes; each module here is one of them:

- `sampling.py`: seeded top-k sampling of the suffix instead of greedy decoding (Carlini et al. 2021;
  Hayes et al. 2024, probabilistic discoverability);
- `relearn.py`: a few fine-tuning steps on text without the forget rows, or on their first halves
  (Lynch et al. 2024; Hu et al., ICLR 2025);
- `quantize.py`: round-to-nearest 8-bit and 4-bit weights (Zhang et al., ICLR 2025);
- `mia.py`: membership inference AUCs of loss, zlib ratio and Min-K% Prob (Carlini et al. 2021;
  Shi et al., ICLR 2024).
"""
