"""The HTTP tagger: a FastAPI app around one ``heads.tagger.Tagger`` (``python -m pipeline.serve``)."""
