"""RVPT (Zhang, He et al., NeurIPS 2025): repulsive visual prompt tuning against CLIP backdoors.
Built so far: the deep visual prompts on open_clip's ViT and the loss (``prompts``); the study's
runs come with the vision-language family."""
