"""Study packages: each registers its learners, datasets and figures when imported."""
