"""Captions: the word-level vocabulary, the grammars of the embedded captioned sources, and the captioned sources
themselves (registered in data/sources.py's `SOURCE_KINDS`)."""
