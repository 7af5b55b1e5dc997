"""Pure loss functions of logits, distribution parameters and data; no model code lives here."""
