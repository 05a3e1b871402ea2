"""PTA (Zhang, Zhang, Zhou, Wei, He, Liu, Feng; arXiv 2509.19994): targeted adversarial examples on
multimodal encoders that generalise to paraphrased targets and evade a k-NN anomaly detector. The
study's plugin registers the multimodal family, the shapes data, the tiny CLIP builder, the
proxy-PGD attack (``methods``: PTA, Adversarial Illusions and its multi-target variant by params)
and the figures."""

from repro import registry
from repro.multimodal import plugin  # noqa: F401  (family, shapes data, tiny_clip)
from repro.studies.pta import methods  # noqa: F401  (registration)

registry.FIGURES.defer("pta/", "repro.studies.pta.figures")  # imported by the job that draws one

registry.MM_METHODS.register("proxy_pgd")(methods.proxy_pgd)
