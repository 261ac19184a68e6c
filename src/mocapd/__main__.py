from mocapd.cli import main

main()
