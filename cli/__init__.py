"""`centinela`: the command line, one front end of the application layer (see cli.main)."""
