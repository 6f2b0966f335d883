"""Generative adversarial networks: losses, networks, and the optimal-discriminator identities."""
