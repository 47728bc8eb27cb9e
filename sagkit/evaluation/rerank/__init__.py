"""k-reciprocal re-ranking: the dense reference (``k_reciprocal``), the memory-bounded sparse path (``sparse``)
and the symmetric neighbour pass it runs on (``symmetric_pass``, ``tile_kernel``)."""
