//! Tensor operations of the forward pass: matmul, norms, RoPE, softmax, activations, attention.
