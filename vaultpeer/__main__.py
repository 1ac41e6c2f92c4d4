from vaultpeer.cli import main

main()
