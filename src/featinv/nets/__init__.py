"""Networks: loading them (torchvision, timm, ONNX, offline weights), naming their layers,
cutting them at a layer, their preprocessing, receptive fields and memory. Nothing here knows
about images being optimised (:mod:`featinv.optim` is above)."""
