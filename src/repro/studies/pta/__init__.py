"""PTA (Zhang, He et al.): proxy targeted attacks on multimodal encoders. Built so far: the PGD
attack with target- and source-modal proxies and the k-dist detector (``attack``); the study's
runs come with the vision-language family."""
