"""The command line: argparse, settings, logging, signals and uvicorn live here."""
