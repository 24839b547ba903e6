"""SparCL's mechanisms (sparcl.md): TDM weight masks, DDR data removal, DGM gradient masks, the rehearsal
buffer and the training-FLOPs accounting. Plain torch/numpy; the training loop is in ``trainer.py``."""
