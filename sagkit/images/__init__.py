"""Your own images: embeddings of image files (``embedding``), ranked lists against a gallery (``gallery``) and
the attention maps drawn beside them (``maps``)."""
