from bitswarm.cli import main

main()
