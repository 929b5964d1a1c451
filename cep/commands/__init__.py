"""The CLI's commands that live in modules of their own; `cep/cli.py` registers each."""
