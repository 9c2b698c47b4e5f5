"""The probe: a sentinel in the user's interpreter, traffic that makes servers leak, and the verdict from both."""
