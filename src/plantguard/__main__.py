from plantguard.cli import main

main()
