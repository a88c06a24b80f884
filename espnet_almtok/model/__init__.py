"""The codec: one module per idea of the paper, composed in ``generator``."""
