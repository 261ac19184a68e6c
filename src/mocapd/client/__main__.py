"""``python -m mocapd.client``: the client commands without the server's CLI."""

from mocapd.client.commands import main

main()
