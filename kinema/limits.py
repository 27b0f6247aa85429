"""What one request may ask of kinema: the resource limits, in one place, each with its reason.

A 24 GB machine serves any request inside them. Every limit is checked before anything is
loaded or allocated, and its error names the limit and what to do instead. Measured on a 2-core
CPU with the shipped model in float32 (README, "Resource limits"): `generate` peaks at ~100 MB +
~380 bytes per output pixel, mostly the autoencoder's decoder; the transformer's memory is small,
but its attention time grows with the square of its tokens. The limits of reading files (frames,
pixels a frame and in all) live with the readers in video.py.
"""

# the autoencoder's compression: frames are 4k + 1 (frame 0 alone, then groups of 4), sides
# multiples of 8 (times the transformer's patch)
SPATIAL, TEMPORAL = 8, 4

# generation (kinema.pipeline, kinema.checks)
MAX_SEED = 2**63 - 1  # seeds are signed 64-bit everywhere (torch, numpy, JSON readers)
MAX_PROMPT_CHARS = 10_000  # the text encoder reads the first 64 tokens (a few hundred characters)
MAX_PROMPTS = 256  # prompts (clips) in one call; eval batches 16
MAX_PASS_FRAMES = 4 * 32 + 1  # frames in one pass; longer videos are made window by window (seconds=)
MAX_CALL_PIXELS = 2**24  # clips x frames x height x width in one call: ~6.5 GB peak
MAX_CLIP_TOKENS = 8192  # transformer tokens a clip: one guided step ~20 s on 2 cores (0.6 s at 1,280)
MAX_LONG_PIXELS = 2**28  # all frames of a long video, kept as uint8 (~800 MB; video.MAX_TOTAL_PIXELS)
MAX_STEPS = 1000  # sampling steps
MAX_GUIDANCE = 30.0  # classifier-free guidance scale
MAX_SECONDS = 600.0  # longest extension / long generation
MAX_EVAL_CLIPS = 2048  # clips per set in `kinema eval` (4 sets of N 17x64x64 clips and their features)

# models (kinema.checkpoint, kinema.config): 10^9 parameters are 4 GB of float32 weights, which a
# 24 GB machine can serve (training needs ~4x: gradients, Adam's two moments, EMA). The model zoo's
# largest (transformer L) has 0.42 x 10^9.
MAX_PARAMS = 1_000_000_000

# training (kinema.config): pixels in one batch of one process, batch_size x frames x height x width
# (the crop's for the autoencoder); the presets use at most 2.2 M; the tiny autoencoder peaked at
# 3.8 GB with 5.2 M
MAX_BATCH_PIXELS = 2**23

# the procedural dataset (kinema.data)
MAX_CLIP_FRAMES = 1024  # frames of one rendered clip
MAX_CLIP_PIXELS = 2**26  # frames x height x width of one clip: rendering takes ~50 bytes a pixel (~3.4 GB)
MAX_EXPORT = 1_000_000  # clips in one `dataset export`
MAX_PREVIEW = 64  # clips in a preview
# clips x frames x height x width of a preview: its grid is 4x that (tiles drawn at 2x); at this
# limit the process peaks at ~1.4 GB (a video grid, or one 4096x4096 frame on a contact sheet)
MAX_PREVIEW_PIXELS = 2**24
