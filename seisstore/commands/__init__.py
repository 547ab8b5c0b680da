"""The ``seisstore`` subcommands, one module per family; ``seisstore.cli`` assembles the group.

``common`` holds what they share (console, ``Failure``, the zone context object, options);
a command module imports it and never another command module or ``seisstore.cli``.
"""
