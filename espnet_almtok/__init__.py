"""ALMTokenizer: a query-based, low-bitrate audio codec tokenizer for ESPnet.

This module stays import-light on purpose: a ``.pth`` file imports it at every
interpreter start to install the registration hook (see ``registration.py``).
"""

__version__ = "0.1.0"
