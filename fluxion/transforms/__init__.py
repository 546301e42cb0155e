"""Function transforms: autodiff (both styles) and vmap."""
