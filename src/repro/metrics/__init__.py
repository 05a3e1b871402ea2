"""Evaluation metrics shared by several studies."""
