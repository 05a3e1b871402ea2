"""Vision-language studies (BDetCLIP, RVPT, PTA; CleanSight): the shared tiny CLIP (``clip``), its
generated data (``repro.data.shapes``) and backdoor triggers (``repro.data.triggers``)."""
