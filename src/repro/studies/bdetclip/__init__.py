"""BDetCLIP (Niu, He et al., ICML 2025): test-time backdoor detection by contrastive prompting.
Built so far: the score, its threshold rule and metrics, and the embedded text generators
(``detector``); the study's runs come with the vision-language family."""
