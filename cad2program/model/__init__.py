"""The network (ViT encoder, transformer decoder), its configurations, decoding and model files."""
