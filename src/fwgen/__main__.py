from fwgen.cli.app import main

main()
