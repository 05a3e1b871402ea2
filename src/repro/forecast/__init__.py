"""Forecasting on sensor graphs (LTE-ODE): the ``forecast`` trainer family (``family``)."""
