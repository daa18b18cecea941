"""What several test modules build alike."""

# The smallest joint model worth testing: a 1 + 1 layer T5 of width 32 and a temporal
# encoder of one convolution block and one layer, as the shipped model has; modules
# add their own frames, time tokens and dimensions.
TINY_LM = {
    "d_model": 32,
    "d_ff": 64,
    "d_kv": 8,
    "n_heads": 4,
    "n_layers": 1,
    "n_decoder_layers": 1,
    "n_temporal_layers": 1,
    "n_temporal_heads": 4,
    "dropout": 0.0,
    "temporal_conv": 3,
}
