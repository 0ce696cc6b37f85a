//! Chat templates: the model's Jinja template in a sandbox, or a built-in format.
