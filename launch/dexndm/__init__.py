"""The DexNDM apps: graph descriptions shared by `ros2 launch` files and the `dexndm` CLI."""
