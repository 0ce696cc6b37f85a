//! `TensorView`: a tensor's name, type, shape and bytes, borrowed from the file (zero copy).
