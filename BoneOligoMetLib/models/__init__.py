"""The study's models on a feature table: encoding, feature selection, classifiers, patient splits,
statistics (DeLong, CIs), fitting and evaluation, the grid of model variants, and model bundles
that load without running code."""
