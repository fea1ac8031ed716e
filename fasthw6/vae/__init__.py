"""The VAE of question 2: KL loss and reparameterisation kernels, and a small VAE model."""
from .api import (kl_divergence, kl_divergence_grad, latent_backward, latent_forward,
                  reparameterize, reparameterize_backward)
from .model import VAE

__all__ = ["kl_divergence", "kl_divergence_grad", "latent_backward", "latent_forward",
           "reparameterize", "reparameterize_backward", "VAE"]
