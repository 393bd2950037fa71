"""nn.init: fill a tensor in place (under no_grad) with a standard initialisation."""
