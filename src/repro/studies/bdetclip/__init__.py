"""BDetCLIP (Niu, He et al., ICML 2025): test-time backdoor detection by contrastive prompting.
Built so far: the score, its threshold rule and metrics, the embedded text generators
(``detector``) and the STRIP, SCALE-UP and TeCo baselines (``baselines``); the study's runs come
with the vision-language family."""
