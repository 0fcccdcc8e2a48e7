"""`handoff provision`: the files a cart needs, written so that `handoff run` accepts them."""
