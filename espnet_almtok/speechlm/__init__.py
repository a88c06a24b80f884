"""Our tokens in ESPnet's SpeechLM: token layout, dumps, vocabularies, adapters."""
