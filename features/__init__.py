"""Tokenisation, word alignment and the frozen-encoder runner."""
