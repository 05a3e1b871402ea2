"""Safety alignment of reasoning LMs (PreSafe): the ``lm_safety`` trainer family (``family``) and its
LM utilities (``lm``: CoT on / off prompts, the latent safety head, tuning, generation)."""
