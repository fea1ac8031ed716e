"""Direct and transposed 2-D convolution, and the document's sub-pixel convolution (question 5)."""
from .api import conv2d, conv_transpose2d, relu, subpixel_conv2d, zero_interpolate

__all__ = ["conv2d", "conv_transpose2d", "relu", "subpixel_conv2d", "zero_interpolate"]
