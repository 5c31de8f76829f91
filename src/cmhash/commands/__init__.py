"""Sub-commands of the ``cmhash`` CLI, one module each (see ``cmhash.cli``)."""
