"""The variants, one module each (what a reader copies), and the gunicorn reset worker; apps/harness/ judges them."""
