"""PA-MoE (Yang, Li, He et al., ICML 2026): phase-aware mixture of LoRA experts. So far its phase
router and losses (``router.py``) and its K LoRA experts through peft with mixed-adapter sampling
(``experts.py``), both tested; the routed rollout, the trainer's expert-wise update and the study
config are not built yet (issue 17), so nothing is registered and no study YAML names it."""
