"""The semantic prior's inputs: frame features, their extraction, residual k-means."""
