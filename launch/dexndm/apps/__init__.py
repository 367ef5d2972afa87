"""One module per app: ARGUMENTS and nodes(args) (see dexndm.graph)."""
