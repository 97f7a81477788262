"""The network: ResNet encoder, Transformer decoder, decoding. Pure nn.Modules, TorchScript-able."""
