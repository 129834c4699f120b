"""One module per experiment (or per closely related group); each registers itself on import.

Modules here are discovered by :func:`stabletrain.lab.registry.load_all`: adding a file is
enough, no list to edit.
"""
