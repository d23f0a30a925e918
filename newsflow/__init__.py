"""newsflow: the shared kernel (settings, tables, contract, errors) of producer and worker."""

__version__ = "0.1.0"
