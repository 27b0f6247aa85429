"""Provenance marks on generated media: signed C2PA manifests (c2pa.py) and an invisible
watermark (watermark.py). Groundwork for issue 22: both work and are tested on their own, but
no output path calls them yet, and the watermark misses its robustness and PSNR targets
(docs/PROVENANCE_WIP.md)."""
