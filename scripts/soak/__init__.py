"""The soak (`make soak`): a million validated requests on the correct approaches, server memory sampled throughout."""
