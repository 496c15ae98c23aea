"""Corpus readers (Kaggle GMB CSV, CoNLL), the category vocabulary and the splits."""
