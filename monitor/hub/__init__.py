"""Supervisor hub: durable alert transport from desks to live consoles.

server.Hub (websockets + HTTP), store.AlertStore (SQLite), desk_client.DeskClient,
console_client.ConsoleClient, console_tui.run_console, cli.add_hub_commands.
"""
from .options import HubOptions

__all__ = ["HubOptions"]
