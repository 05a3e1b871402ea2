"""A forecaster module that needs a package nobody installs (the plugin test's failing import)."""

import repro_no_such_package  # noqa: F401

Forecaster = None
