from fwgen.cli import main

main()
